//! Which changes to a running guest take effect at once, as Proxmox decides it: every change to
//! a running guest is first written to `[pending]`; settings that only describe the guest
//! (name, description, tags, onboot, startup, protection — qemu-server's `$fast_plug_option`,
//! pct's `$LXC_FASTPLUG_OPTIONS`) move into the current configuration at once; the engine tries
//! the rest live (devices, balloon, vCPUs, cgroup limits) as far as the VM's `hotplug` key or
//! pct's rules allow; whatever remains waits for the next start.

use crate::guest::{GuestConfig, GuestKind, Section};
use crate::schema::Value;

/// Keys that only describe a guest and apply to a running one without touching it.
pub fn is_fast_plug(kind: GuestKind, key: &str) -> bool {
    match kind {
        GuestKind::Vm => matches!(
            key,
            "description"
                | "hookscript"
                | "lock"
                | "migrate_downtime"
                | "migrate_speed"
                | "name"
                | "onboot"
                | "protection"
                | "shares"
                | "startup"
                | "tags"
                | "vmstatestorage"
        ),
        GuestKind::Ct => {
            matches!(
                key,
                "description" | "hookscript" | "hostname" | "lock" | "onboot" | "protection" | "startup" | "tags"
            )
        }
    }
}

/// The VM `hotplug` features: what may be plugged into, or out of, a running VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HotplugFeatures {
    pub network: bool,
    pub disk: bool,
    pub usb: bool,
    pub cpu: bool,
    pub memory: bool,
    pub cloudinit: bool,
}

impl HotplugFeatures {
    /// Parses a `hotplug` value: a list of features, `0` for none, `1` (and unset) for the
    /// default `network,disk,usb`.
    pub fn parse(value: Option<&str>) -> HotplugFeatures {
        let default = HotplugFeatures { network: true, disk: true, usb: true, ..HotplugFeatures::default() };
        match value {
            None | Some("1") => default,
            Some("0") => HotplugFeatures::default(),
            Some(list) => {
                let mut features = HotplugFeatures::default();
                for feature in list.split([',', ';']) {
                    match feature.trim() {
                        "network" => features.network = true,
                        "disk" => features.disk = true,
                        "usb" => features.usb = true,
                        "cpu" => features.cpu = true,
                        "memory" => features.memory = true,
                        "cloudinit" => features.cloudinit = true,
                        _ => {}
                    }
                }
                features
            }
        }
    }

    /// The features of a VM's current settings.
    pub fn of(config: &Section) -> HotplugFeatures {
        HotplugFeatures::parse(config.get("hotplug").and_then(Value::as_str))
    }
}

impl GuestConfig {
    /// Moves the pending change of `key` (a value or a deletion) into the current settings.
    pub fn commit_pending(&mut self, key: &str) {
        if let Some(value) = self.pending.values.remove(key) {
            self.current.insert(key.to_owned(), value);
        }
        if self.pending.delete.remove(key) {
            self.current.remove(key);
        }
    }

    /// Moves every pending change into the current settings, as a start does first. Answers
    /// the keys that changed.
    pub fn apply_pending(&mut self) -> Vec<String> {
        let mut keys: Vec<String> = self.pending.values.keys().chain(self.pending.delete.iter()).cloned().collect();
        keys.sort();
        keys.dedup();
        for key in &keys {
            self.commit_pending(key);
        }
        keys
    }

    /// Moves the pending changes of keys that only describe the guest into the current
    /// settings; answers them.
    pub fn commit_fast_plug(&mut self) -> Vec<String> {
        let kind = self.kind;
        let mut keys: Vec<String> = self
            .pending
            .values
            .keys()
            .chain(self.pending.delete.iter())
            .filter(|k| is_fast_plug(kind, k))
            .cloned()
            .collect();
        keys.dedup();
        for key in &keys {
            self.commit_pending(key);
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::{ApplyMode, ConfigEdit};

    #[test]
    fn features() {
        let f = HotplugFeatures::parse(None);
        assert!(f.network && f.disk && f.usb && !f.cpu && !f.memory);
        assert_eq!(HotplugFeatures::parse(Some("1")), f);
        assert_eq!(HotplugFeatures::parse(Some("0")), HotplugFeatures::default());
        let f = HotplugFeatures::parse(Some("cpu,disk"));
        assert!(f.cpu && f.disk && !f.network && !f.usb);
    }

    #[test]
    fn fast_plug_keys_move_at_once_the_rest_pends() {
        let mut config = GuestConfig::new(GuestKind::Vm);
        let set = |pairs: &[(&str, &str)], delete: &[&str]| {
            let set: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let delete: Vec<String> = delete.iter().map(|s| s.to_string()).collect();
            ConfigEdit::parse(GuestKind::Vm, &set, &delete, &[]).unwrap()
        };
        config.apply(&set(&[("memory", "512"), ("tags", "a")], &[]), ApplyMode::Direct).unwrap();
        config
            .apply(&set(&[("memory", "1024"), ("name", "web"), ("bios", "ovmf")], &["tags"]), ApplyMode::Pending)
            .unwrap();
        assert_eq!(config.commit_fast_plug(), ["name", "tags"]);
        assert_eq!(config.current.get("name"), Some(&Value::Str("web".into())));
        assert!(!config.current.contains_key("tags"));
        assert_eq!(config.pending.values.keys().collect::<Vec<_>>(), ["bios", "memory"]);
        assert_eq!(config.apply_pending(), ["bios", "memory"]);
        assert!(config.pending.is_empty());
        assert_eq!(config.current.get("memory"), Some(&Value::Int(1024)));
    }
}
