//! Integration tests: every module starts a real hearthd on a temporary root and talks to it
//! through its socket, with the client library or the real CLI binaries.

mod cli;
mod concurrency;
mod config;
mod crash;
mod protocol;
mod storage;
mod storage_btrfs;
mod tasks;

use hearth_client::Client;
use hearth_core::Vmid;
use hearth_proto::{CreateGuest, CtRequest, Payload, Request, VmRequest};

pub fn vmid(id: u32) -> Vmid {
    Vmid::new(id).expect("test ids are in range")
}

pub fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Creates a VM and waits for its task.
pub fn create_vm(client: &mut Client, id: u32, options: &[(&str, &str)]) {
    let request = Request::Vm(VmRequest::Create(CreateGuest { vmid: vmid(id), options: opts(options) }));
    let Payload::Task(upid) = client.call(&request).expect("create is accepted") else {
        panic!("create answers with a task")
    };
    let info = client.follow(&upid, |_| {}).expect("following the task");
    assert_eq!(info.state, hearth_proto::TaskState::Ok, "{upid}");
}

/// Creates a container and waits for its task.
pub fn create_ct(client: &mut Client, id: u32, options: &[(&str, &str)]) {
    let request = Request::Ct(CtRequest::Create(CreateGuest { vmid: vmid(id), options: opts(options) }));
    let Payload::Task(upid) = client.call(&request).expect("create is accepted") else {
        panic!("create answers with a task")
    };
    let info = client.follow(&upid, |_| {}).expect("following the task");
    assert_eq!(info.state, hearth_proto::TaskState::Ok, "{upid}");
}
