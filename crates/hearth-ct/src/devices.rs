//! Which device nodes a container may use, as one list of rules written two ways: the v1
//! `devices` controller's `devices.allow` lines, and for cgroup v2, which has no such
//! controller, an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the
//! container's cgroup (LXC's `lxc.cgroup2.devices.*`, runc's device filter, systemd's
//! `DeviceAllow=` all do the same).
//!
//! The rules are LXC's `common.conf` list less the host's console: creating any node (`m`) is
//! allowed, using one only for the null, zero, full, random and urandom devices, the terminals
//! (`/dev/tty`, `/dev/ptmx`, ptys) and, with the `fuse` feature, `/dev/fuse`. The container's
//! `/dev/console` is a pty the monitor holds (a pts device), so the host's console, 5:1, is
//! not on the list: a privileged container could otherwise `mknod` it and write to, or with
//! `CAP_SYS_ADMIN` push input into, the host's system console. Everything else is refused, for
//! privileged containers too: `mknod` of a host disk succeeds but opening the node does not.
//!
//! **Program.** The kernel calls it with `struct bpf_cgroup_dev_ctx` in r1: `access_type`
//! (`(access << 16) | type`, access bits mknod 1, read 2, write 4; type block 1, char 2),
//! `major`, `minor`. It loads the four values into r2..r5, then tests the rules in order, each
//! a block that jumps to the next block on the first mismatch and returns 1 (allow) when
//! everything matched; after the last block it returns 0 (deny). An access matches a rule when
//! every requested access bit is one the rule grants (`access & !granted == 0`).
//!
//! On a hybrid host the kernel runs both: the cgroup2 program (every program attached with
//! `BPF_F_ALLOW_MULTI` on the way up must allow) and then the v1 rules
//! (`devcgroup_check_permission`); an access needs both. The program is attached to `<ct>`,
//! above the container's cgroup namespace root `<ct>/ns`, so the container can neither see nor
//! detach it, and what it attaches below can only narrow the rules.

use hearth_sys::bpf::Insn;

/// Block or character device, or both (`a` in v1 rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
    Any,
}

/// Access bits, as the kernel's `BPF_DEVCG_ACC_*` and v1's `m`, `r`, `w`.
pub const MKNOD: u32 = 1;
pub const READ: u32 = 2;
pub const WRITE: u32 = 4;
const RWM: u32 = MKNOD | READ | WRITE;

/// `BPF_DEVCG_DEV_BLOCK`, `BPF_DEVCG_DEV_CHAR`.
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;

/// One allow rule; `None` for major or minor is `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// [`MKNOD`] | [`READ`] | [`WRITE`].
    pub access: u32,
}

impl DeviceRule {
    const fn char(major: u32, minor: Option<u32>, access: u32) -> DeviceRule {
        DeviceRule { kind: DeviceKind::Char, major: Some(major), minor, access }
    }

    /// The `devices.allow` line: `c 1:3 rwm`, `b *:* m`.
    pub fn v1_line(&self) -> String {
        let kind = match self.kind {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
            DeviceKind::Any => 'a',
        };
        let number = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        let mut access = String::new();
        for (bit, letter) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(letter);
            }
        }
        format!("{kind} {}:{} {access}", number(self.major), number(self.minor))
    }

    /// Whether this rule grants `access` to the device (`block`: a block device).
    pub fn allows(&self, block: bool, major: u32, minor: u32, access: u32) -> bool {
        let kind = match self.kind {
            DeviceKind::Any => true,
            DeviceKind::Block => block,
            DeviceKind::Char => !block,
        };
        kind && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && access & !self.access == 0
    }
}

/// The rules of every container; `fuse` adds `/dev/fuse` (10:229).
pub fn container_rules(fuse: bool) -> Vec<DeviceRule> {
    let mut rules = vec![
        // Creating nodes is harmless: using them is what the other rules decide.
        DeviceRule { kind: DeviceKind::Char, major: None, minor: None, access: MKNOD },
        DeviceRule { kind: DeviceKind::Block, major: None, minor: None, access: MKNOD },
        DeviceRule::char(1, Some(3), RWM), // null
        DeviceRule::char(1, Some(5), RWM), // zero
        DeviceRule::char(1, Some(7), RWM), // full
        DeviceRule::char(1, Some(8), RWM), // random
        DeviceRule::char(1, Some(9), RWM), // urandom
        DeviceRule::char(5, Some(0), RWM), // tty
        DeviceRule::char(5, Some(2), RWM), // ptmx
        DeviceRule::char(136, None, RWM),  // pts
    ];
    if fuse {
        rules.push(DeviceRule::char(10, Some(229), RWM));
    }
    rules
}

/// The rule that lets the container use a passed-through `devN` node.
pub fn passthrough_rule(device: &crate::spec::DeviceSpec) -> DeviceRule {
    let kind = if device.block { DeviceKind::Block } else { DeviceKind::Char };
    let access = if device.readonly { MKNOD | READ } else { RWM };
    DeviceRule { kind, major: Some(device.major), minor: Some(device.minor), access }
}

/// The rules of a container: [`container_rules`] and its passed-through devices.
pub fn rules_for(spec: &crate::spec::ContainerSpec) -> Vec<DeviceRule> {
    let mut rules = container_rules(spec.features.fuse);
    rules.extend(spec.devices.iter().map(passthrough_rule));
    rules
}

// eBPF opcodes (linux/bpf_common.h, linux/bpf.h).
/// `BPF_LDX | BPF_MEM | BPF_W`.
const LDX_W: u8 = 0x61;
/// `BPF_ALU | BPF_AND | BPF_K` (32-bit).
const AND32_K: u8 = 0x54;
/// `BPF_ALU | BPF_RSH | BPF_K`.
const RSH32_K: u8 = 0x74;
/// `BPF_ALU | BPF_MOV | BPF_K`.
const MOV32_K: u8 = 0xb4;
/// `BPF_ALU | BPF_MOV | BPF_X`.
const MOV32_X: u8 = 0xbc;
/// `BPF_JMP | BPF_JNE | BPF_K`.
const JNE_K: u8 = 0x55;
/// `BPF_JMP | BPF_JNE | BPF_X`.
const JNE_X: u8 = 0x5d;
/// `BPF_JMP | BPF_EXIT`.
const EXIT: u8 = 0x95;

// Registers: r1 the context on entry, r2 type, r3 access, r4 major, r5 minor.
const R0: u8 = 0;
const R1: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

/// The program for `rules` (see the module documentation).
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut insns = vec![
        Insn::new(LDX_W, TYPE, R1, 0, 0),
        Insn::new(AND32_K, TYPE, 0, 0, 0xffff),
        Insn::new(LDX_W, ACCESS, R1, 0, 0),
        Insn::new(RSH32_K, ACCESS, 0, 0, 16),
        Insn::new(LDX_W, MAJOR, R1, 4, 0),
        Insn::new(LDX_W, MINOR, R1, 8, 0),
    ];
    for rule in rules {
        // Checks first, each jumping past the rest of the block; `off` is filled in once the
        // block's length is known.
        let mut checks = Vec::new();
        match rule.kind {
            DeviceKind::Char => checks.push(Insn::new(JNE_K, TYPE, 0, 0, DEV_CHAR as i32)),
            DeviceKind::Block => checks.push(Insn::new(JNE_K, TYPE, 0, 0, DEV_BLOCK as i32)),
            DeviceKind::Any => {}
        }
        if rule.access & RWM != RWM {
            // r1 = access & granted; anything requested but not granted makes them differ.
            checks.push(Insn::new(MOV32_X, R1, ACCESS, 0, 0));
            checks.push(Insn::new(AND32_K, R1, 0, 0, rule.access as i32));
            checks.push(Insn::new(JNE_X, R1, ACCESS, 0, 0));
        }
        if let Some(major) = rule.major {
            checks.push(Insn::new(JNE_K, MAJOR, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            checks.push(Insn::new(JNE_K, MINOR, 0, 0, minor as i32));
        }
        checks.push(Insn::new(MOV32_K, R0, 0, 0, 1));
        checks.push(Insn::new(EXIT, 0, 0, 0, 0));
        let len = checks.len();
        for (i, insn) in checks.iter_mut().enumerate() {
            if insn.code == JNE_K || insn.code == JNE_X {
                // Relative to the next instruction: land on the first one after the block.
                insn.off = (len - i - 1) as i16;
            }
        }
        insns.extend(checks);
    }
    insns.push(Insn::new(MOV32_K, R0, 0, 0, 0));
    insns.push(Insn::new(EXIT, 0, 0, 0, 0));
    insns
}

/// `BPF_PROG_TYPE_CGROUP_DEVICE` programs may use no helper that a licence gates; the string
/// is what LXC passes.
pub const LICENSE: &std::ffi::CStr = c"GPL";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An eBPF interpreter for the instructions [`program`] emits, run on a device context.
    fn run(program: &[Insn], access_type: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access_type, major, minor];
        let mut reg = [0u64; 11];
        reg[1] = u64::MAX; // The context pointer: only ever used as the base of loads.
        let mut pc = 0usize;
        loop {
            let insn = program[pc];
            pc += 1;
            let (dst, src) = (usize::from(insn.dst()), usize::from(insn.src()));
            let imm = insn.imm as u32;
            match insn.code {
                LDX_W => {
                    assert_eq!(reg[src], u64::MAX, "loads only from the context");
                    reg[dst] = u64::from(ctx[insn.off as usize / 4]);
                }
                AND32_K => reg[dst] = u64::from(reg[dst] as u32 & imm),
                RSH32_K => reg[dst] = u64::from((reg[dst] as u32) >> imm),
                MOV32_K => reg[dst] = u64::from(imm),
                MOV32_X => reg[dst] = u64::from(reg[src] as u32),
                // 64-bit compares against the sign-extended immediate, as the kernel does.
                JNE_K if reg[dst] != insn.imm as i64 as u64 => pc += insn.off as usize,
                JNE_X if reg[dst] != reg[src] => pc += insn.off as usize,
                JNE_K | JNE_X => {}
                EXIT => return reg[0],
                other => panic!("opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    fn verdict(program: &[Insn], block: bool, major: u32, minor: u32, access: u32) -> bool {
        let kind = if block { DEV_BLOCK } else { DEV_CHAR };
        run(program, (access << 16) | kind, major, minor) == 1
    }

    #[test]
    fn v1_lines() {
        let lines: Vec<String> = container_rules(true).iter().map(DeviceRule::v1_line).collect();
        assert_eq!(lines[..3], ["c *:* m", "b *:* m", "c 1:3 rwm"]);
        assert_eq!(lines.last().unwrap(), "c 10:229 rwm");
        assert_eq!(lines.iter().filter(|l| l.starts_with("c 136:*")).count(), 1);
        assert_eq!(container_rules(false).len() + 1, lines.len());
    }

    /// The program decides exactly as the rules read in Rust, over every access combination
    /// of the devices the rules name and of their neighbours.
    #[test]
    fn program_matches_the_rules() {
        for fuse in [false, true] {
            let rules = container_rules(fuse);
            let program = program(&rules);
            let mut numbers = vec![(0, 0), (1, 1), (7, 0), (8, 0), (10, 200), (10, 229), (136, 77), (4, 1)];
            for rule in &rules {
                let (major, minor) = (rule.major.unwrap_or(250), rule.minor.unwrap_or(17));
                numbers.extend([(major, minor), (major, minor + 1), (major + 1, minor)]);
            }
            for (major, minor) in numbers {
                for block in [false, true] {
                    for access in 1..=RWM {
                        let expected = rules.iter().any(|r| r.allows(block, major, minor, access));
                        assert_eq!(
                            verdict(&program, block, major, minor, access),
                            expected,
                            "fuse {fuse}: {} {major}:{minor} access {access}",
                            if block { 'b' } else { 'c' }
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn what_a_container_may_open() {
        let program = program(&container_rules(false));
        // /dev/null read-write; a host disk (8:0) or /dev/mem (1:1) may be created, not opened.
        assert!(verdict(&program, false, 1, 3, READ | WRITE));
        assert!(verdict(&program, true, 8, 0, MKNOD));
        assert!(!verdict(&program, true, 8, 0, READ));
        assert!(!verdict(&program, true, 7, 0, READ | WRITE));
        assert!(!verdict(&program, false, 1, 1, READ));
        assert!(verdict(&program, false, 136, 4, READ | WRITE));
        assert!(!verdict(&program, false, 10, 229, READ), "fuse only with the feature");
        assert!(!verdict(&program, false, 5, 1, WRITE), "the host's console");
        assert!(verdict(&program, false, 5, 1, MKNOD));
    }

    /// The kernel's verifier accepts the program.
    #[test]
    fn the_kernel_loads_the_program() {
        for fuse in [false, true] {
            hearth_sys::bpf::load_cgroup_device_program(&program(&container_rules(fuse)), LICENSE)
                .expect("BPF_PROG_LOAD of the device program (needs root and CONFIG_CGROUP_BPF)");
        }
    }
}
