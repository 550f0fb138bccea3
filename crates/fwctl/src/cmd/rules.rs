//! `fwctl … rules list|add|set|delete|move`: a scope's (or a security group's) rules,
//! addressed by position as in Proxmox's firewall API.

use clap::{Arg, ArgMatches, Command};
use hearth_client::cli::{self, Align, OutputFormat, Table};
use hearth_core::firewall::{Rule, RuleType};
use hearth_proto::{FirewallRequest, FirewallScope};

use super::{change, flag, option, optional, positional, text};

/// The rule fields, as the API's parameters.
const FIELDS: &[(&str, &str, &str)] = &[
    ("action", "ACTION", "ACCEPT, DROP or REJECT; for --type group the security group"),
    ("macro", "MACRO", "A macro (SSH, HTTP, DNS, …): its protocols and ports"),
    ("iface", "IFACE", "Interface: netN for guests, a host interface for host rules"),
    ("source", "ADDRESSES", "Source: address, CIDR, range a-b, list, +ipset or alias"),
    ("dest", "ADDRESSES", "Destination: address, CIDR, range a-b, list, +ipset or alias"),
    ("proto", "PROTO", "IP protocol by name or number"),
    ("dport", "PORTS", "Destination ports: number, service name, a:b range, comma list"),
    ("sport", "PORTS", "Source ports: number, service name, a:b range, comma list"),
    ("icmp-type", "TYPE", "ICMP type (with --proto icmp or icmpv6)"),
    ("log", "LEVEL", "Log level: emerg alert crit err warning notice info debug nolog"),
    ("comment", "TEXT", "Comment"),
];

fn rule_args(cmd: Command, required: bool) -> Command {
    let mut cmd = cmd.arg(
        Arg::new("type")
            .long("type")
            .value_name("TYPE")
            .value_parser(["in", "out", "forward", "group", "IN", "OUT", "FORWARD", "GROUP"])
            .required(required)
            .help("Direction in, out or forward; group to apply a security group"),
    );
    for (name, value, help) in FIELDS {
        let mut a = option(name, value, help);
        if *name == "action" {
            a = a.required(required);
        }
        cmd = cmd.arg(a);
    }
    cmd.arg(
        Arg::new("enable")
            .long("enable")
            .value_name("0|1")
            .value_parser(["0", "1"])
            .num_args(0..=1)
            .default_missing_value("1")
            .help("Whether the rule is in effect (default 1)"),
    )
    .arg(flag("force", "Apply even when the management ports (SSH 22, API 8006) would be dropped"))
}

fn pos() -> Arg {
    positional("pos", "POS", "The rule's position (0 is first)").value_parser(clap::value_parser!(usize))
}

pub fn command() -> Command {
    Command::new("rules")
        .about("List and change rules")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommands([
            Command::new("list").about("List the rules in order (first match wins)"),
            rule_args(Command::new("add").about("Insert a rule (at --pos, default first)"), true)
                .arg(option("pos", "POS", "Position to insert at").value_parser(clap::value_parser!(usize))),
            rule_args(Command::new("set").about("Change fields of the rule at POS, or move it with --moveto"), false)
                .arg(pos())
                .arg(option("moveto", "POS", "Move the rule to this position").value_parser(clap::value_parser!(usize)))
                .arg(option("delete", "FIELDS", "Fields to clear, separated by commas")),
            Command::new("delete")
                .about("Delete the rule at POS")
                .arg(pos())
                .arg(flag("force", "Apply even when the management ports would be dropped")),
            Command::new("move")
                .about("Move the rule at POS to TO")
                .arg(pos())
                .arg(positional("to", "TO", "New position").value_parser(clap::value_parser!(usize)))
                .arg(flag("force", "Apply even when the management ports would be dropped")),
        ])
}

fn set_field(rule: &mut Rule, name: &str, value: Option<String>) {
    let slot = match name {
        "macro" => &mut rule.macro_name,
        "iface" => &mut rule.iface,
        "source" => &mut rule.source,
        "dest" => &mut rule.dest,
        "proto" => &mut rule.proto,
        "dport" => &mut rule.dport,
        "sport" => &mut rule.sport,
        "icmp-type" => &mut rule.icmp_type,
        "log" => &mut rule.log,
        "comment" => &mut rule.comment,
        _ => return,
    };
    *slot = value;
}

fn apply_fields(rule: &mut Rule, m: &ArgMatches) {
    for (name, _, _) in FIELDS {
        if *name == "action" {
            if let Some(a) = optional(m, "action") {
                rule.action = a;
            }
            continue;
        }
        if let Some(v) = optional(m, name) {
            set_field(rule, name, Some(v));
        }
    }
    if let Some(e) = optional(m, "enable") {
        rule.enable = e == "1";
    }
}

/// The rules a scope answers, parsed from their numbered `.fw` lines.
fn fetch(scope: FirewallScope, group: &Option<String>) -> anyhow::Result<Vec<Rule>> {
    let t = text(FirewallRequest::RulesList { scope, group: group.clone() })?;
    t.lines()
        .map(|l| {
            let line = l.split_once(": ").map_or(l, |x| x.1);
            Rule::parse_line(line).map_err(|e| anyhow::anyhow!("hearthd sent a rule that does not parse: {e}"))
        })
        .collect()
}

pub fn run(scope: FirewallScope, group: Option<String>, m: &ArgMatches, format: OutputFormat) -> anyhow::Result<()> {
    let Some((action, args)) = m.subcommand() else {
        anyhow::bail!("no rules command given; see `fwctl … rules --help`")
    };
    let force = cli::flag(args, "force");
    match action {
        "list" => {
            let rules = fetch(scope, &group)?;
            if format.is_json() {
                let rows: Vec<serde_json::Value> = rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let mut v = serde_json::to_value(r).unwrap_or_default();
                        v["pos"] = serde_json::json!(i);
                        v["enable"] = serde_json::json!(u8::from(r.enable));
                        v
                    })
                    .collect();
                return cli::print_json(&rows, format);
            }
            let mut table = Table::new(&[
                ("pos", Align::Right),
                ("type", Align::Left),
                ("action", Align::Left),
                ("rule", Align::Left),
                ("enable", Align::Left),
                ("comment", Align::Left),
            ]);
            for (i, r) in rules.iter().enumerate() {
                let mut plain = r.clone();
                plain.comment = None;
                plain.enable = true;
                let line = plain.to_line();
                let rest = line.splitn(3, ' ').nth(2).unwrap_or("").to_string();
                let action = match &r.macro_name {
                    Some(mac) => format!("{mac}({})", r.action),
                    None => r.action.clone(),
                };
                table.row(vec![
                    i.to_string(),
                    r.kind.as_str().to_ascii_uppercase(),
                    action,
                    rest,
                    u8::from(r.enable).to_string(),
                    r.comment.clone().unwrap_or_default(),
                ]);
            }
            table.print()
        }
        "add" => {
            let kind = RuleType::parse(&optional(args, "type").unwrap_or_default())
                .ok_or_else(|| anyhow::anyhow!("--type: expected in, out, forward or group"))?;
            let mut rule = Rule::new(kind, "");
            apply_fields(&mut rule, args);
            let pos = args.try_get_one::<usize>("pos").ok().flatten().copied();
            change(FirewallRequest::RuleAdd { scope, group, rule: rule.to_line(), pos, force }, format)
        }
        "set" => {
            let pos = *args.get_one::<usize>("pos").expect("required");
            let rules = fetch(scope, &group)?;
            let mut rule = rules
                .get(pos)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("pos: no rule at position {pos} (there are {} rules)", rules.len()))?;
            if let Some(t) = optional(args, "type") {
                rule.kind =
                    RuleType::parse(&t).ok_or_else(|| anyhow::anyhow!("--type: expected in, out, forward or group"))?;
            }
            apply_fields(&mut rule, args);
            for field in cli::key_list(args, "delete") {
                if !FIELDS.iter().any(|(n, _, _)| *n == field) || field == "action" {
                    anyhow::bail!("--delete: '{field}' is not a field that can be cleared");
                }
                set_field(&mut rule, &field, None);
            }
            let moveto = args.try_get_one::<usize>("moveto").ok().flatten().copied();
            change(FirewallRequest::RuleSet { scope, group, pos, rule: Some(rule.to_line()), moveto, force }, format)
        }
        "delete" => {
            let pos = *args.get_one::<usize>("pos").expect("required");
            change(FirewallRequest::RuleDelete { scope, group, pos, force }, format)
        }
        "move" => {
            let pos = *args.get_one::<usize>("pos").expect("required");
            let to = *args.get_one::<usize>("to").expect("required");
            change(FirewallRequest::RuleSet { scope, group, pos, rule: None, moveto: Some(to), force }, format)
        }
        other => anyhow::bail!("unknown rules command '{other}'"),
    }
}
