//! pct's extras on real containers: `move-volume` between storages, `cpusets`, and
//! `start --debug`.

use hearth_test::HearthdProcess;

use crate::ct::{create, ctid, exec};
use crate::{json, ok, run};

#[test]
fn move_volume_cpusets_and_debug_start() {
    let daemon = HearthdProcess::start();
    let id = ctid(40);
    create(&daemon, &id, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf-8");
    ok(&daemon, "storectl", &["add", "dir", "second", "--path", path, "--content", "rootdir,images"]);
    let old = json(&daemon, "ctctl", &["config", &id])["rootfs"].as_str().expect("rootfs").to_owned();
    let old_volid = old.split(',').next().expect("volume").to_owned();

    // Moved: the configuration points at the copy, the old volume stays as unused0.
    let out = ok(&daemon, "ctctl", &["move-volume", &id, "rootfs", "second"]);
    assert!(out.contains("TASK OK"), "{out}");
    let config = json(&daemon, "ctctl", &["config", &id]);
    let rootfs = config["rootfs"].as_str().expect("rootfs");
    assert!(rootfs.starts_with(&format!("second:{id}/subvol-{id}-disk-0.subvol")), "{config}");
    assert_eq!(config["unused0"], old_volid.as_str(), "{config}");
    // It runs from the copy; what it writes lands there.
    ok(&daemon, "ctctl", &["start", &id, "--debug"]);
    let (code, _, _) = exec(&daemon, &id, &["sh", "-c", "echo moved > /root/mark"]);
    assert_eq!(code, 0);
    let mark = dir.path().join(format!("images/{id}/subvol-{id}-disk-0.subvol/root/mark"));
    assert_eq!(std::fs::read_to_string(&mark).expect("the mark on the new storage"), "moved\n");

    // cpusets lists the running container with the CPUs its cpuset allows.
    let sets = json(&daemon, "ctctl", &["cpusets"]);
    let cpus = sets[&id].as_array().expect("the container is listed");
    assert!(!cpus.is_empty(), "{sets}");
    let table = ok(&daemon, "ctctl", &["cpusets"]);
    assert!(table.starts_with("---") && table.contains(&format!("{id}:  0")), "{table}");

    // Refusals: running, unknown volume, storage without rootdir.
    let (code, _, stderr) = run(&daemon, "ctctl", &["move-volume", &id, "rootfs", "local"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is running"), "{stderr}");
    ok(&daemon, "ctctl", &["stop", &id]);
    let (code, _, stderr) = run(&daemon, "ctctl", &["move-volume", &id, "mp3", "local"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("mp3: no such volume in"), "{stderr}");
    let (code, _, _) = run(&daemon, "ctctl", &["move-volume", &id, "swap", "local"]);
    assert_eq!(code, 2, "only rootfs and mpN are volumes");

    // Back with --delete: the copy on 'second' is freed.
    let out = ok(&daemon, "ctctl", &["move-volume", &id, "rootfs", "local", "--delete"]);
    assert!(out.contains("freed second:"), "{out}");
    assert!(!mark.exists(), "the volume on 'second' was freed");
    let config = json(&daemon, "ctctl", &["config", &id]);
    assert!(config["rootfs"].as_str().expect("rootfs").starts_with("local:"), "{config}");

    // start --debug logs the whole start specification.
    let out = ok(&daemon, "ctctl", &["start", &id, "--debug"]);
    assert!(out.contains(&format!("DEBUG: starting CT {id} with:")) && out.contains("DEBUG:   \""), "{out}");
    ok(&daemon, "ctctl", &["stop", &id]);
}
