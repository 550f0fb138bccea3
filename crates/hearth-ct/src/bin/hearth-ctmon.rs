//! hearth-ctmon: started by hearthd, one per running container (and for short helper jobs such
//! as template extraction and exec). Not meant to be run by hand.

fn main() -> std::process::ExitCode {
    eprintln!("hearth-ctmon: not implemented yet");
    std::process::ExitCode::FAILURE
}
