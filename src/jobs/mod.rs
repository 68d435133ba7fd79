//! Background jobs and their typed progress events.
