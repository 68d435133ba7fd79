//! VM images for real (issue #15): builds the demo stack with `--vm`, boots the disk under
//! `qemu-system-x86_64` (UEFI with OVMF; KVM when it boots firmware, else TCG) with a NoCloud
//! seed made by `cloud-localds` carrying the secret and a data disk labelled `drover-data`,
//! waits for the health path through a forwarded 127.0.0.1 port, checks the secret reached
//! the app and is in no image file, powers it off (ACPI, as a platform does), then boots a
//! replaced VM (a fresh overlay of the same
//! image) on the same data disk and checks the data survived. Also: a kernel the
//! repositories do not have and a `[vm] size` too small are refused before anything is
//! written. Needs root, the Debian mirror and `.ci/setup`'s packages.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/drover_env.rs"]
mod drover_env;
#[path = "support/template_stacks.rs"]
mod template_stacks;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_env::{copy_dir, run_ok, Env};
use template_stacks::{free_port, get};

/// With the characters a systemd EnvironmentFile would eat (`\`, `"`, `$`): the VM must
/// get it literally, as an instance does.
const SECRET: &str = r#"vm-s3cret\9f"2d$71c4"#;
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The demo stack with `[vm]` on, its boot script counting boots on the data disk and
/// saying (not printing) whether the secret arrived, and its secrets file.
fn setup() -> Env {
    let env = Env::new(env!("CARGO_BIN_EXE_drover"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("config"), &env.root.join("config"));
    copy_dir(
        &repo.join("assets/demo/hello"),
        &env.root.join("assets/demo/hello"),
    );
    let file = env.root.join("config/stacks/hello.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replace(
        "boot = \"\"\"\nset -eu\nmkdir -p /var/lib/hello\n\"\"\"",
        "boot = \"\"\"\nset -eu\nmkdir -p /var/lib/hello\necho boot >> /var/lib/hello/boots\n\
         echo \"boots so far: $(wc -l < /var/lib/hello/boots)\"\n\
         if [ -n \"${HELLO_TOKEN:-}\" ]; then echo \"token present: ${#HELLO_TOKEN} characters\"; fi\n\"\"\"",
    );
    assert!(
        text.contains("boots so far"),
        "the demo's boot script changed"
    );
    std::fs::write(&file, format!("{text}\n[vm]\nenabled = true\n")).unwrap();
    let secrets = env.root.join("config/secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    // An undeclared name (PATH would break the app) is not taken from the seed.
    std::fs::write(
        secrets.join("hello.env"),
        format!("# the demo's token\n  HELLO_TOKEN={SECRET}\nPATH=/nonexistent\n"),
    )
    .unwrap();
    env
}

fn contains(file: &Path, needle: &[u8]) -> bool {
    use std::io::Read;
    let mut f = std::fs::File::open(file).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return false;
        }
        carry.extend_from_slice(&buf[..n]);
        if carry.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        let keep = carry.len().saturating_sub(needle.len());
        carry.drain(..keep);
    }
}

/// Whether KVM boots firmware here (a `/dev/kvm` may exist and still fail, e.g. nested).
fn kvm_usable(scratch: &Path) -> bool {
    if std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return false;
    }
    let vars = scratch.join("probe-vars.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    let log = scratch.join("probe.log");
    let _ = Command::new("timeout")
        .args(["15", "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host"])
        .args([
            "-machine", "q35", "-m", "256", "-display", "none", "-net", "none",
        ])
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            vars.display()
        ))
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    std::fs::read(&log).is_ok_and(|b| b.windows(6).any(|w| w == b"BdsDxe"))
}

struct Vm {
    child: Child,
    console: PathBuf,
    monitor: PathBuf,
}

impl Vm {
    /// Press the power button (ACPI, through QEMU's monitor) and wait for the guest to
    /// shut down, as a platform stops a VM it replaces: the data disk is then clean.
    fn power_off(mut self, limit: Duration) {
        use std::io::Write;
        let mut m = std::os::unix::net::UnixStream::connect(&self.monitor).unwrap();
        m.write_all(b"system_powerdown\n").unwrap();
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "the VM did not power off in {limit:?}; console:\n{}",
            console(&self)
        );
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The scratch directory (overlay, firmware variables, console, monitor socket)
        // lives in the system temp dir (a socket path must stay short): remove it.
        if let Some(scratch) = self.console.parent() {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

/// Boot a fresh overlay of `image` with the `seed` and `data` disks, forwarding
/// 127.0.0.1:`port` to the guest's 8080.
fn boot(image: &Path, seed: &Path, data: &Path, port: u16, n: u32, kvm: bool) -> Vm {
    let dir = image.parent().unwrap().to_path_buf();
    let scratch = std::env::temp_dir().join(format!("drover-vm-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let overlay = scratch.join("overlay.qcow2");
    run_ok(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(image)
            .arg(&overlay),
    );
    let vars = scratch.join("vars.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    let console = scratch.join("console.log");
    let monitor = scratch.join("monitor.sock");
    let accel: &[&str] = if kvm {
        &["-accel", "kvm", "-cpu", "host"]
    } else {
        &["-accel", "tcg,thread=multi", "-cpu", "max"]
    };
    let child = Command::new("qemu-system-x86_64")
        .current_dir(&dir)
        .args([
            "-machine", "q35", "-smp", "2", "-m", "1024", "-display", "none",
        ])
        .args(accel)
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            vars.display()
        ))
        .arg("-drive")
        .arg(format!(
            "file={},if=none,id=root,format=qcow2",
            overlay.display()
        ))
        .args(["-device", "virtio-blk-pci,drive=root,bootindex=1"])
        .arg("-drive")
        .arg(format!(
            "file={},if=none,id=seed,format=raw,readonly=on",
            seed.display()
        ))
        .args(["-device", "virtio-blk-pci,drive=seed"])
        .arg("-drive")
        .arg(format!(
            "file={},if=none,id=data,format=raw",
            data.display()
        ))
        .args(["-device", "virtio-blk-pci,drive=data"])
        .arg("-netdev")
        .arg(format!("user,id=n,hostfwd=tcp:127.0.0.1:{port}-:8080"))
        .args(["-device", "virtio-net-pci,netdev=n,romfile="])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-monitor")
        .arg(format!("unix:{},server,nowait", monitor.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run qemu-system-x86_64 (run .ci/setup)");
    Vm {
        child,
        console,
        monitor,
    }
}

/// Wait for the health path; the seconds it took.
fn wait_healthy(vm: &mut Vm, port: u16, limit: Duration) -> f64 {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(status) = vm.child.try_wait().unwrap() {
            panic!(
                "qemu exited ({status}); console:\n{}",
                std::fs::read_to_string(&vm.console).unwrap_or_default()
            );
        }
        if get(port, "/up").is_some_and(|(code, _)| code == 200) {
            return t.elapsed().as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "the VM did not answer /up in {limit:?}; console:\n{}",
        String::from_utf8_lossy(&std::fs::read(&vm.console).unwrap_or_default())
    );
}

fn console(vm: &Vm) -> String {
    String::from_utf8_lossy(&std::fs::read(&vm.console).unwrap_or_default()).into_owned()
}

#[test]
fn the_demo_boots_as_a_vm_with_its_secret_from_the_seed_and_keeps_its_data_disk() {
    let env = setup();
    let t = Instant::now();
    let report = env.json(&["--json", "build", "hello"]);
    let build_secs = t.elapsed().as_secs_f64();
    let vm = &report["vm"];
    assert_eq!(vm["format"], "qcow2", "{report:#}");
    let image = PathBuf::from(vm["path"].as_str().unwrap());
    assert!(image.is_file());
    assert!(vm["kernel"]
        .as_str()
        .unwrap()
        .starts_with("linux-image-cloud-amd64 "));
    let boot_packages: Vec<&str> = vm["boot_packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        boot_packages.iter().any(|p| p.starts_with("systemd-sysv ")),
        "{boot_packages:?}"
    );
    assert!(!boot_packages
        .iter()
        .any(|p| p.starts_with("python3-minimal ")));
    // The VM image's manifest: the image's packages plus the boot layer's, marked.
    let listed = env.json(&["--json", "manifest", "hello", "--vm"]);
    let layer_of = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["layer"].as_str().unwrap().to_string())
    };
    assert_eq!(
        layer_of("systemd-sysv").as_deref(),
        Some("boot"),
        "{listed:#}"
    );
    assert_eq!(layer_of("python3-minimal").as_deref(), Some("image"));
    assert!(layer_of("linux-image-cloud-amd64").is_some());
    // Its SBOM: the boot packages with their source packages and origins (the kernel's
    // from the mirror, not `local`), the subject the disk file.
    let bom = env.json(&["manifest", "hello", "--vm", "--format", "cyclonedx"]);
    assert_eq!(bom["metadata"]["component"]["type"], "file");
    assert_eq!(
        bom["metadata"]["component"]["version"],
        report["vm"]["digest"]
    );
    let kernel = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "linux-image-cloud-amd64")
        .unwrap_or_else(|| panic!("no kernel in the VM SBOM: {bom:#}"));
    let props = kernel["properties"].to_string();
    assert!(
        props.contains("\"drover:origin\",\"value\":\"http://deb.debian.org/debian\""),
        "{kernel:#}"
    );
    // The update check covers the boot packages (0 or more, each against the VM image).
    let vm_updates = env.json(&["updates", "hello", "--vm", "--json"]);
    for u in vm_updates.as_array().unwrap() {
        assert_eq!(
            u["against"],
            format!("vm build {}", report["build_id"]),
            "{u}"
        );
    }
    // The secret is in no image file: not the qcow2, not its raw content.
    let raw = env.root.join("check.raw");
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-q", "-O", "raw"])
            .arg(&image)
            .arg(&raw),
    );
    assert!(
        !contains(&raw, SECRET.as_bytes()),
        "the secret is in the disk image"
    );
    assert!(!contains(&image, SECRET.as_bytes()));
    std::fs::remove_file(&raw).unwrap();

    // The NoCloud seed: user-data is the stack's secrets file (KEY=VALUE lines).
    let scratch = env.root.join("vm");
    std::fs::create_dir_all(&scratch).unwrap();
    let seed = scratch.join("seed.img");
    run_ok(
        Command::new("cloud-localds")
            .arg(&seed)
            .arg(env.root.join("config/secrets/hello.env")),
    );
    let data = scratch.join("data.img");
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "drover-data"])
            .arg(&data)
            .arg("64M"),
    );
    let kvm = kvm_usable(&scratch);
    let port = free_port();
    let limit = Duration::from_secs(if kvm { 120 } else { 420 });

    let mut first = boot(&image, &seed, &data, port, 1, kvm);
    let healthy = wait_healthy(&mut first, port, limit);
    let (code, body) = get(port, "/").unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("from drover demo"), "{body}");
    let out = console(&first);
    assert!(out.contains("boots so far: 1"), "{out}");
    assert!(
        out.contains(&format!("token present: {} characters", SECRET.len())),
        "{out}"
    );
    assert!(!out.contains(SECRET), "the secret was printed");
    first.power_off(limit);

    // A replaced VM: a fresh overlay of the same image, the same data disk.
    let mut second = boot(&image, &seed, &data, port, 2, kvm);
    let healthy2 = wait_healthy(&mut second, port, limit);
    let out = console(&second);
    assert!(
        out.contains("boots so far: 2"),
        "the data disk did not survive:\n{out}"
    );
    second.power_off(limit);
    println!(
        "VM image: build {build_secs:.1} s (VM step {:.1} s, {} bytes qcow2); boot to healthy \
         {healthy:.1} s, {healthy2:.1} s ({})",
        vm["seconds"].as_f64().unwrap(),
        vm["size"],
        if kvm { "KVM" } else { "TCG" }
    );

    // Bad input, refused before anything is written: no kernel for the architecture, and a
    // disk too small for the tree.
    let file = env.root.join("config/stacks/hello.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    for (vm_table, says) in [
        (
            "[vm]\nenabled = true\nkernel = \"linux-image-cloud-arm64\"\n",
            "`kernel` in [vm]",
        ),
        (
            "[vm]\nenabled = true\nsize = \"300MiB\"\n",
            "`size` in [vm]",
        ),
    ] {
        std::fs::write(&file, text.replace("[vm]\nenabled = true\n", vm_table)).unwrap();
        let images = env.root.join("state/images/hello");
        let before = std::fs::read_dir(&images).unwrap().count();
        let out = env.drover(&["--json", "build", "hello"]);
        assert!(!out.status.success());
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let err = r["error"].as_str().unwrap();
        assert!(err.contains(says), "{err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert_eq!(r["failed_step"], "vm");
        assert_eq!(std::fs::read_dir(&images).unwrap().count(), before);
    }
}
