//! The node's network configuration (`netctl`): staged edits, pending changes, apply with
//! rollback.

use std::sync::Arc;

use hearth_core::access::Privilege;
use hearth_proto::{ErrorKind, ErrorReply, NetworkRequest, Payload};

use crate::Daemon;
use crate::access::Caller;

/// The privilege a request needs on `/nodes/<node>`: reading Sys.Audit, changing Sys.Modify.
pub fn privilege(request: &NetworkRequest) -> Privilege {
    match request {
        NetworkRequest::List { .. }
        | NetworkRequest::Show { .. }
        | NetworkRequest::Pending
        | NetworkRequest::Export => Privilege::SysAudit,
        NetworkRequest::Create { .. }
        | NetworkRequest::Set { .. }
        | NetworkRequest::Delete { .. }
        | NetworkRequest::Apply { .. }
        | NetworkRequest::Confirm
        | NetworkRequest::Revert
        | NetworkRequest::Import { .. } => Privilege::SysModify,
    }
}

pub fn handle(_daemon: &Arc<Daemon>, _caller: &Caller, request: NetworkRequest) -> Result<Payload, ErrorReply> {
    let name: &'static str = (&request).into();
    Err(ErrorReply::new(ErrorKind::Unavailable, format!("network request {name} is not available yet")))
}
