//! `storectl config [<storage>]`: the storage definitions and the table's digest.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, OutputFormat};
use hearth_proto::{Payload, Request, StorageRequest};

pub fn command() -> Command {
    Command::new("config")
        .about("Show storage definitions")
        .long_about(
            "Show the definitions in storage.toml (all, or one storage) and the digest that set --digest takes.",
        )
        .arg(Arg::new("storage").value_name("STORAGE").help("Only this storage"))
}

pub fn run(matches: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let request = Request::Storage(StorageRequest::Config { storage: matches.get_one::<String>("storage").cloned() });
    let configs = match cli::connect(crate::BIN)?.call(&request)? {
        Payload::StorageConfigs(c) => c,
        other => return Err(cli::unexpected(&other)),
    };
    if format.is_json() {
        return cli::print_json(&configs, format);
    }
    let mut out = String::new();
    for def in &configs.storages {
        let kind = def.config.get("type").and_then(|v| v.as_str()).unwrap_or("?");
        out.push_str(&format!("{kind}: {}\n", def.storage));
        for (key, value) in def.config.iter().filter(|(k, _)| *k != "type") {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            out.push_str(&format!("\t{key} {value}\n"));
        }
        out.push('\n');
    }
    out.push_str(&format!("digest: {}\n", configs.digest));
    cli::print_text(&out)
}
