//! `drover` binary: parse arguments and dispatch to the library. No logic here.

fn main() {
    std::process::exit(drover::cli::main());
}
