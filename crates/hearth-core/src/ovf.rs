//! OVF manifests (`vmctl importovf`, as `qm importovf`): the name, memory, cores and disks of
//! the first virtual system, each disk with the file that holds it (relative to the manifest)
//! and the bus slot it sits on, as Proxmox reads them.

use roxmltree::{Document, Node};

/// What an OVF manifest describes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// A valid VM name made from the system's `Name` (or its `ovf:id`).
    pub name: Option<String>,
    /// MiB.
    pub memory: Option<u64>,
    pub cores: Option<u64>,
    pub disks: Vec<Disk>,
}

/// One disk of the system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// The VM's key for it: `scsi0`, `ide1`, `sata0`.
    pub address: String,
    /// The file's `ovf:href`, a plain name beside the manifest.
    pub file: String,
}

const OVF_NS: &str = "http://schemas.dmtf.org/ovf/envelope/1";

/// An attribute in the OVF namespace (`ovf:id`), or without one.
fn attr<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attribute((OVF_NS, name)).or_else(|| node.attribute(name))
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).and_then(|c| c.text()).map(str::trim)
}

fn descendants<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.descendants().filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// A name qm accepts: letters, digits, `-` and `.`, as a DNS name.
fn vm_name(raw: &str) -> Option<String> {
    let name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect();
    let name = name.trim_matches(|c| c == '-' || c == '.');
    (!name.is_empty()).then(|| name.chars().take(63).collect())
}

/// The memory of an item in MiB, from its `AllocationUnits` (`byte * 2^20`, `MegaBytes`, ...).
fn memory_mib(item: Node<'_, '_>) -> Result<u64, String> {
    let quantity: u64 =
        text(item, "VirtualQuantity").and_then(|q| q.parse().ok()).ok_or("the memory item has no VirtualQuantity")?;
    let units = text(item, "AllocationUnits").unwrap_or("byte * 2^20").replace(' ', "").to_ascii_lowercase();
    let shift = match units.as_str() {
        "byte*2^20" | "megabytes" | "mb" => 0,
        "byte*2^30" | "gigabytes" | "gb" => 10,
        "byte*2^10" | "kilobytes" | "kb" => return Ok(quantity / 1024),
        "byte" => return Ok(quantity >> 20),
        other => return Err(format!("unknown memory AllocationUnits '{other}'")),
    };
    Ok(quantity << shift)
}

/// Parses a manifest; disk files must be plain names (no directories), so they stay beside it.
pub fn parse(xml: &str) -> Result<Manifest, String> {
    let doc = Document::parse(xml).map_err(|e| format!("not an OVF manifest: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "Envelope" {
        return Err("not an OVF manifest: the root element is not Envelope".into());
    }
    let system = descendants(root, "VirtualSystem").next().ok_or("the manifest has no VirtualSystem")?;
    let mut manifest =
        Manifest { name: text(system, "Name").or_else(|| attr(system, "id")).and_then(vm_name), ..Manifest::default() };
    let items: Vec<Node> = descendants(system, "Item").chain(descendants(system, "StorageItem")).collect();
    let resource = |item: Node| text(item, "ResourceType").and_then(|t| t.parse::<u32>().ok());
    for item in &items {
        match resource(*item) {
            Some(3) => manifest.cores = text(*item, "VirtualQuantity").and_then(|q| q.parse().ok()),
            Some(4) => manifest.memory = Some(memory_mib(*item)?),
            _ => {}
        }
    }
    let files: Vec<(&str, &str)> =
        descendants(root, "File").filter_map(|f| Some((attr(f, "id")?, attr(f, "href")?))).collect();
    let disks: Vec<(&str, &str)> =
        descendants(root, "Disk").filter_map(|d| Some((attr(d, "diskId")?, attr(d, "fileRef")?))).collect();
    for item in items.iter().filter(|i| resource(**i) == Some(17)) {
        let Some(host) = text(*item, "HostResource") else { continue };
        let disk_id = host.trim_start_matches("ovf:").trim_start_matches("/disk/");
        let Some((_, file_ref)) = disks.iter().find(|(id, _)| *id == disk_id) else {
            return Err(format!("disk '{host}' is not in the DiskSection"));
        };
        let Some((_, href)) = files.iter().find(|(id, _)| id == file_ref) else {
            return Err(format!("file '{file_ref}' of disk '{disk_id}' is not in the References"));
        };
        if href.is_empty() || href.contains('/') || href.starts_with('.') || href.contains('\0') {
            return Err(format!("disk file '{href}' must be a plain file name beside the manifest"));
        }
        let controller = text(*item, "Parent")
            .and_then(|parent| items.iter().find(|i| text(**i, "InstanceID") == Some(parent)))
            .and_then(|c| resource(*c));
        let bus = match controller {
            Some(5) => "ide",
            Some(20) => "sata",
            _ => "scsi",
        };
        let mut slot: u32 = text(*item, "AddressOnParent").and_then(|a| a.parse().ok()).unwrap_or(0);
        while manifest.disks.iter().any(|d| d.address == format!("{bus}{slot}")) {
            slot += 1;
        }
        manifest.disks.push(Disk { address: format!("{bus}{slot}"), file: (*href).to_owned() });
    }
    Ok(manifest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE.md).
mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:id="file1" ovf:href="disk1.vmdk"/><File ovf:id="file2" ovf:href="data.qcow2"/></References>
  <DiskSection><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="1"/>
    <Disk ovf:diskId="vmdisk2" ovf:fileRef="file2" ovf:capacity="1"/></DiskSection>
  <VirtualSystem ovf:id="web server">
    <Name>Web Server 01</Name>
    <VirtualHardwareSection>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>512</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>5</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource><rasd:InstanceID>6</rasd:InstanceID><rasd:Parent>4</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#;

    #[test]
    fn reads_name_memory_cores_and_disks() {
        let m = parse(SAMPLE).unwrap();
        assert_eq!(m.name.as_deref(), Some("Web-Server-01"));
        assert_eq!((m.memory, m.cores), (Some(512), Some(2)));
        assert_eq!(
            m.disks,
            [
                Disk { address: "scsi0".into(), file: "disk1.vmdk".into() },
                Disk { address: "ide1".into(), file: "data.qcow2".into() }
            ]
        );
        let escaping = SAMPLE.replace("disk1.vmdk", "../etc/shadow");
        assert!(parse(&escaping).unwrap_err().contains("plain file name"));
        assert!(parse("<x/>").unwrap_err().contains("not an OVF manifest"));
        assert!(parse("not xml").is_err());
        let gib = SAMPLE.replace("byte * 2^20", "byte * 2^30");
        assert_eq!(parse(&gib).unwrap().memory, Some(512 << 10));
    }
}
