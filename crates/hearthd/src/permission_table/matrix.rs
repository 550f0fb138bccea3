//! The permission matrix: every sample of the table, for every built-in role granted on each
//! path of [`GRANTS`] in turn, is decided by hearthd as its rule says; every request variant has
//! a sample; the rule notation parses as the module documentation of `permission_table` says.

#![allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).

use super::*;
use crate::access::unmet;
use hearth_core::access::role::BUILTIN_ROLES;
use hearth_core::access::{AccessModel, AclEntry, AclPath, AclSubject, Authid, Pool, PrivSet, Privilege, User};

/// The paths one ACL entry is granted on, in turn.
const GRANTS: &[&str] = &["/", "/vms/100", "/vms/101", "/storage/local", "/pool/team", "/sdn/zones/localnetwork/vmbr0"];

/// A rule, parsed.
#[derive(Debug)]
enum Rule {
    Anyone,
    Root,
    Holds { privileges: PrivSet, path: String },
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
}

impl Rule {
    fn allows(&self, held: &dyn Fn(&str) -> PrivSet) -> bool {
        match self {
            Rule::Anyone => true,
            Rule::Root => false,
            Rule::Holds { privileges, path } => privileges.is_subset(held(path)),
            Rule::And(a, b) => a.allows(held) && b.allows(held),
            Rule::Or(a, b) => a.allows(held) || b.allows(held),
        }
    }
}

/// A recursive-descent parser: or := and ('|' and)*; and := atom ('&' atom)*;
/// atom := '(' or ')' | 'root' | '-' | PRIV[,PRIV]*@PATH.
struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn parse(text: &str) -> Rule {
        let spaced = text.replace('(', " ( ").replace(')', " ) ").replace('&', " & ").replace('|', " | ");
        let mut p = Parser { tokens: spaced.split_whitespace().map(str::to_owned).collect(), at: 0 };
        let rule = p.or();
        assert_eq!(p.at, p.tokens.len(), "trailing text in rule '{text}'");
        rule
    }

    fn next(&mut self) -> String {
        let t = self.tokens.get(self.at).cloned().unwrap_or_else(|| panic!("rule ends early: {:?}", self.tokens));
        self.at += 1;
        t
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn or(&mut self) -> Rule {
        let mut rule = self.and();
        while self.peek() == Some("|") {
            self.at += 1;
            rule = Rule::Or(Box::new(rule), Box::new(self.and()));
        }
        rule
    }

    fn and(&mut self) -> Rule {
        let mut rule = self.atom();
        while self.peek() == Some("&") {
            self.at += 1;
            rule = Rule::And(Box::new(rule), Box::new(self.atom()));
        }
        rule
    }

    fn atom(&mut self) -> Rule {
        let token = self.next();
        match token.as_str() {
            "(" => {
                let rule = self.or();
                assert_eq!(self.next(), ")", "unbalanced parentheses");
                rule
            }
            "root" => Rule::Root,
            "-" => Rule::Anyone,
            term => {
                let (privs, path) = term.split_once('@').unwrap_or_else(|| panic!("'{term}' is not PRIV@PATH"));
                let privileges = privs
                    .split(',')
                    .map(|p| Privilege::from_name(p).unwrap_or_else(|| panic!("unknown privilege '{p}'")))
                    .fold(PrivSet::EMPTY, PrivSet::with);
                AclPath::parse(path).unwrap_or_else(|e| panic!("{e}"));
                Rule::Holds { privileges, path: path.to_owned() }
            }
        }
    }
}

/// alice@pam holding `role` on `path` alone; the pool `team` holds guest 100 and storage
/// `local`.
fn model(role: &str, path: &str) -> AccessModel {
    let alice: hearth_core::access::Userid = CALLER.parse().unwrap();
    let mut m = AccessModel::default();
    m.users.insert(alice.clone(), User::default());
    m.users.insert("bob@pam".parse().unwrap(), User::default());
    m.pools.insert(
        "team".parse().unwrap(),
        Pool { comment: None, vms: [id(OWN)].into(), storage: ["local".to_owned()].into() },
    );
    m.acl.push(AclEntry::new(AclPath::parse(path).unwrap(), AclSubject::User(alice), role.parse().unwrap()));
    m.validate().unwrap();
    m
}

#[test]
fn hearthd_decides_every_sample_as_its_rule_for_every_role_and_grant() {
    let samples = samples();
    let rules: Vec<Rule> = samples.iter().map(|s| Parser::parse(s.rule)).collect();
    let needs: Vec<_> = samples.iter().map(|s| required(&s.request, NODE, &caller())).collect();
    let who = Authid::User(CALLER.parse().unwrap());
    let mut cells = 0;
    let mut wrong = Vec::new();
    for role in BUILTIN_ROLES {
        for grant in GRANTS {
            let m = model(role.name, grant);
            let held = |path: &str| AclPath::parse(path).map(|p| m.permissions(&who, &p, 0)).unwrap_or(PrivSet::EMPTY);
            for ((s, rule), needs) in samples.iter().zip(&rules).zip(&needs) {
                cells += 1;
                let hearthd = unmet(needs, false, &held).is_none();
                if hearthd != rule.allows(&held) {
                    let verdict = if hearthd { "allows" } else { "refuses" };
                    wrong.push(format!("{} on {grant}: hearthd {verdict} `{}` (rule: {})", role.name, s.cli, s.rule));
                }
                // root@pam meets every need.
                assert!(unmet(needs, true, &held).is_none());
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {cells} cells differ:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(cells, samples.len() * BUILTIN_ROLES.len() * GRANTS.len());
}

#[test]
fn every_request_variant_has_a_sample() {
    let missing = unsampled_variants(&samples());
    assert!(missing.is_empty(), "request variants without a sample in permission_table.rs: {missing:?}");
}

#[test]
fn rules_parse_as_written() {
    let held = |path: &str| match path {
        "/vms/100" => PrivSet::from(Privilege::VmAudit),
        "/storage/local" => PrivSet::from(Privilege::DatastoreAudit),
        _ => PrivSet::EMPTY,
    };
    let allows = |rule: &str| Parser::parse(rule).allows(&held);
    assert!(allows("-"));
    assert!(!allows("root"));
    assert!(allows("VM.Audit@/vms/100"));
    assert!(!allows("VM.Audit,VM.Allocate@/vms/100"));
    assert!(allows("VM.Allocate@/vms/100 | VM.Audit@/vms/100 & Datastore.Audit@/storage/local"));
    assert!(!allows("(VM.Allocate@/vms/100 | VM.Audit@/vms/100) & Datastore.Allocate@/storage/local"));
    assert!(!allows("VM.Audit@/vms/101"));
}

#[test]
fn the_table_lists_every_sample() {
    let table = markdown();
    for s in samples() {
        assert!(table.contains(&format!("`{}`", s.cli)), "{}", s.cli);
    }
    assert!(table.contains("| `vmctl set 100 --memory 512` | VM.Config.Memory on /vms/100 |"), "{table}");
}
