//! hearth-ctmon: started by hearthd, one per running container, and for short jobs that must
//! run single-threaded or inside a container's user namespace (template extraction, first-boot
//! set-up, exec). Not meant to be run by hand: its arguments are hearthd's.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = args.split_first() else {
        eprintln!("hearth-ctmon is started by hearthd; it takes a mode: monitor, exec, template, setup");
        return ExitCode::from(2);
    };
    let result = match mode.as_str() {
        "monitor" => hearth_ct::monitor::main(rest),
        "exec" => hearth_ct::attach::main(rest),
        "template" => hearth_ct::template::helper_main(rest),
        "setup" => hearth_ct::setup::helper_main(rest),
        other => Err(format!("unknown mode '{other}'")),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("hearth-ctmon {mode}: {message}");
            ExitCode::FAILURE
        }
    }
}
