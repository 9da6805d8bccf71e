//! The read-only SFTP server for data products.
//!
//! A holder logs in as the permit's name (`sftp <permit>@exposure-sftp.hub-<hub>.svc`) with
//! the private half of the permit's `spec.holder.sshPublicKey`; no password, no other key, no
//! shell, no forwarding. The root lists the products the permit grants as directories, each
//! holding the product's objects. Every write, removal, rename or attribute change is refused
//! (`SSH_FX_PERMISSION_DENIED`), and so is any path in a product the permit does not grant.
//!
//! The permit is checked again on every request, and once a second for every open session: a
//! permit that expires, is deleted, changes its key or is found invalid closes its sessions
//! with a disconnect message saying why. Each listing and each file read (with its bytes),
//! served or refused, and each login, leaves a record in the exposure audit trail.
//!
//! A file is streamed from S3: sequential reads continue one GET, and a read elsewhere in the
//! file starts another at that offset, so a client's pipelined reads cost one request to the
//! object store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use kube::ResourceExt as _;
use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{ChannelId, Disconnect, MethodKind, MethodSet};
use russh_sftp::extensions::{LIMITS, LimitsExtension};
use russh_sftp::protocol::{
    Attrs, Data, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status,
    StatusCode, Version,
};
use russh_sftp::server::StatusReply;

use super::{CREDENTIAL_REFRESH, Channel, MAX_LISTED, Outcome, Products, Record, plain_key};
use crate::api::DataPermit;
use crate::controller::data_hub::exposure::HostKey;
use crate::telemetry::AuditSink;

/// How often open sessions are checked against their permits.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// What a holder whose permit stopped granting access is told on disconnect.
pub const REVOKED: &str = "the data permit no longer grants access";
/// Entries per `SSH_FXP_NAME` answer of a directory listing.
const ENTRIES_PER_ANSWER: usize = 100;
/// The largest SFTP packet the server takes (russh-sftp's own limit), and the largest read it
/// answers (a packet, less room for its header, as OpenSSH's server does).
const MAX_PACKET: u64 = 262_144;
const MAX_READ: u64 = MAX_PACKET - 1024;

/// Whether `permit` lets the holder of `key` in to `hub` at `now`: the permit is the hub's,
/// in force, and names exactly this key.
pub fn admits(
    permit: &DataPermit,
    hub: &str,
    key: &PublicKey,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    permit.spec.data_hub.name == hub
        && permit.in_force(now)
        && permit
            .spec
            .holder
            .ssh_public_key
            .as_deref()
            .and_then(|line| PublicKey::from_openssh(line).ok())
            .is_some_and(|k| k.key_data() == key.key_data())
}

/// A path as the holder names it, resolved against the root: `..` never climbs above it.
/// Returns the segments.
pub fn segments(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out
}

/// Where a path points: the root, a product, or something inside a product.
#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    /// `/`: the permit's products.
    Root,
    /// `/<product>`.
    Product(String),
    /// `/<product>/<key…>`: an object, or a "directory" of objects under that prefix.
    Inside(String, String),
}

impl Place {
    /// The place `path` points to.
    pub fn of(path: &str) -> Self {
        let s = segments(path);
        match s.as_slice() {
            [] => Place::Root,
            [product] => Place::Product((*product).to_string()),
            [product, rest @ ..] => Place::Inside((*product).to_string(), rest.join("/")),
        }
    }

    /// The absolute path of the place.
    pub fn path(&self) -> String {
        match self {
            Place::Root => "/".into(),
            Place::Product(p) => format!("/{p}"),
            Place::Inside(p, k) => format!("/{p}/{k}"),
        }
    }

    fn product(&self) -> Option<&str> {
        match self {
            Place::Root => None,
            Place::Product(p) | Place::Inside(p, _) => Some(p),
        }
    }
}

fn dir_attrs() -> FileAttributes {
    FileAttributes {
        permissions: Some(0o040_555),
        ..FileAttributes::empty()
    }
}

fn file_attrs(size: u64, modified: Option<u32>) -> FileAttributes {
    FileAttributes {
        size: Some(size),
        permissions: Some(0o100_444),
        mtime: modified,
        atime: modified,
        ..FileAttributes::empty()
    }
}

fn unix_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<u32> {
    t.and_then(|t| u32::try_from(t.secs()).ok())
}

fn denied(message: impl Into<String>) -> StatusReply {
    StatusCode::PermissionDenied.with_message(message)
}

fn failure(what: &str, e: impl std::fmt::Display) -> StatusReply {
    tracing::warn!(error = %e, "{what}");
    StatusCode::Failure.with_message(format!(
        "{what}: the object store did not answer; try again"
    ))
}

/// What the server shares between connections: the products and the open sessions.
#[derive(Clone)]
struct Shared {
    products: Products,
    sessions: Arc<Mutex<HashMap<u64, Live>>>,
    next: Arc<AtomicU64>,
}

/// An open session: whose permit, with which key, and how to close it.
struct Live {
    permit: String,
    uid: String,
    key: PublicKey,
    handle: russh::server::Handle,
}

impl Shared {
    /// The permit `user` names, if it lets `key` in now.
    fn admitted(&self, user: &str, key: &PublicKey) -> Option<Arc<DataPermit>> {
        let now = k8s_openapi::jiff::Timestamp::now();
        self.products
            .permit(user)
            .filter(|p| admits(p, self.products.hub(), key, now))
    }

    /// Closes every session whose permit no longer lets it in.
    async fn sweep(&self) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let ended: Vec<(u64, Live)> = match self.sessions.lock() {
            Ok(mut sessions) => {
                let gone: Vec<u64> = sessions
                    .iter()
                    .filter(|(_, live)| {
                        !self.products.permit(&live.permit).is_some_and(|p| {
                            p.metadata.uid.as_deref() == Some(live.uid.as_str())
                                && admits(&p, self.products.hub(), &live.key, now)
                        })
                    })
                    .map(|(id, _)| *id)
                    .collect();
                gone.into_iter()
                    .filter_map(|id| sessions.remove(&id).map(|l| (id, l)))
                    .collect()
            }
            Err(_) => return,
        };
        for (_, live) in ended {
            self.close(live).await;
        }
    }

    /// Closes session `id` because its permit no longer lets it in, once.
    async fn revoke(&self, id: u64) {
        let live = self.sessions.lock().ok().and_then(|mut s| s.remove(&id));
        if let Some(live) = live {
            self.close(live).await;
        }
    }

    async fn close(&self, live: Live) {
        let _ = live
            .handle
            .disconnect(Disconnect::ByApplication, REVOKED.into(), "en".into())
            .await;
        self.products.note(Record {
            outcome: Some(Outcome::Forbidden),
            operation: Some("disconnect"),
            permit: Some(live.permit.clone()),
            reason: Some(REVOKED.into()),
            ..Default::default()
        });
    }
}

/// One SSH connection.
struct Connection {
    shared: Shared,
    id: u64,
    peer: Option<SocketAddr>,
    /// The permit (name, UID, holder) and key it logged in with.
    login: Option<(String, String, String, PublicKey)>,
    channels: HashMap<ChannelId, russh::Channel<Msg>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Ok(mut sessions) = self.shared.sessions.lock() {
            sessions.remove(&self.id);
        }
    }
}

impl Connection {
    fn refuse_login(&self, user: &str, reason: &str) {
        self.shared.products.note(Record {
            outcome: Some(Outcome::Unauthenticated),
            operation: Some("login"),
            permit: Some(user.into()),
            reason: Some(format!(
                "{reason} (from {})",
                self.peer.map(|p| p.ip().to_string()).unwrap_or_default()
            )),
            ..Default::default()
        });
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.shared.admitted(user, offer.public_key).is_some() {
            Ok(Auth::Accept)
        } else {
            self.refuse_login(user, "no data permit in force of that name holds this key");
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some(permit) = self.shared.admitted(user, key.public_key) else {
            self.refuse_login(user, "no data permit in force of that name holds this key");
            return Ok(Auth::reject());
        };
        self.login = Some((
            permit.name_any(),
            permit.metadata.uid.clone().unwrap_or_default(),
            permit.spec.holder.name.clone(),
            key.public_key.clone(),
        ));
        self.shared.products.note(Record {
            outcome: Some(Outcome::Served),
            operation: Some("login"),
            permit: Some(permit.name_any()),
            holder: Some(permit.spec.holder.name.clone()),
            ..Default::default()
        });
        Ok(Auth::Accept)
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        if let (Some((permit, uid, _, key)), Ok(mut sessions)) =
            (&self.login, self.shared.sessions.lock())
        {
            sessions.insert(
                self.id,
                Live {
                    permit: permit.clone(),
                    uid: uid.clone(),
                    key: key.clone(),
                    handle: session.handle(),
                },
            );
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: russh::Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.close(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(open), Some((permit, uid, holder, _))) =
            (self.channels.remove(&channel), self.login.clone())
        else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        if name != "sftp" {
            session.channel_failure(channel)?;
            return Ok(());
        }
        session.channel_success(channel)?;
        let handler = Sftp {
            shared: self.shared.clone(),
            session: self.id,
            products: self.shared.products.clone(),
            permit,
            uid,
            holder,
            open: HashMap::new(),
            next: 0,
        };
        russh_sftp::server::run(open.into_stream(), handler).await;
        Ok(())
    }
}

/// An open handle of an SFTP session.
enum Opened {
    /// A listing, answered in pieces.
    Dir { entries: Vec<File>, sent: usize },
    /// A file being read.
    File(Reading),
}

/// A file being read: where it is, how far the current GET has come, what was sent.
struct Reading {
    product: String,
    key: String,
    size: u64,
    /// The offset the current body continues at.
    position: u64,
    body: Option<ByteStream>,
    pending: Bytes,
    sent: u64,
}

/// One SFTP session, of one permit.
struct Sftp {
    shared: Shared,
    /// The SSH session it runs in.
    session: u64,
    products: Products,
    permit: String,
    uid: String,
    holder: String,
    open: HashMap<String, Opened>,
    next: u64,
}

impl Drop for Sftp {
    fn drop(&mut self) {
        // Files the session did not close (the holder went away, or the permit was revoked
        // mid-transfer) are recorded with what was sent.
        let open: Vec<Reading> = self
            .open
            .drain()
            .filter_map(|(_, o)| match o {
                Opened::File(r) => Some(r),
                Opened::Dir { .. } => None,
            })
            .collect();
        for r in open {
            self.record_read(&r, Some("the session ended before the file was closed"));
        }
    }
}

impl Sftp {
    /// Records a file read with the bytes sent.
    fn record_read(&self, r: &Reading, reason: Option<&str>) {
        self.products.record(Record {
            outcome: Some(Outcome::Served),
            operation: Some("read"),
            permit: Some(self.permit.clone()),
            holder: Some(self.holder.clone()),
            product: Some(&r.product),
            object: Some(&r.key),
            bytes: Some(i64::try_from(r.sent).unwrap_or(i64::MAX)),
            reason: reason.map(String::from),
            ..Default::default()
        });
    }

    /// The products the permit grants now; empty once it no longer grants anything.
    fn granted(&self) -> Vec<String> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let hub = self.products.hub();
        self.products
            .permit(&self.permit)
            .filter(|p| p.metadata.uid.as_deref() == Some(self.uid.as_str()))
            .map(|p| {
                p.spec
                    .products
                    .iter()
                    .filter(|product| p.covers(hub, product, now))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn record(&self, operation: &'static str, place: &Place, result: Result<(), &StatusReply>) {
        let (product, object) = match place {
            Place::Root => (None, None),
            Place::Product(p) => (Some(p.as_str()), None),
            Place::Inside(p, k) => (Some(p.as_str()), Some(k.as_str())),
        };
        let (outcome, reason) = match result {
            Ok(()) => (Outcome::Served, None),
            Err(reply) => (
                match reply.status_code {
                    StatusCode::PermissionDenied => Outcome::Forbidden,
                    StatusCode::NoSuchFile => Outcome::NotFound,
                    _ => Outcome::Failed,
                },
                reply.error_message.clone(),
            ),
        };
        self.products.record(Record {
            outcome: Some(outcome),
            operation: Some(operation),
            permit: Some(self.permit.clone()),
            holder: Some(self.holder.clone()),
            product,
            object,
            reason,
            ..Default::default()
        });
    }

    /// Closes the session (the holder is told why) and refuses the request: the permit no
    /// longer grants anything.
    async fn revoked(&self) -> StatusReply {
        self.shared.revoke(self.session).await;
        denied(REVOKED)
    }

    /// Refuses `place` unless the permit grants its product (the root is always allowed).
    async fn check(&self, place: &Place) -> Result<(), StatusReply> {
        let granted = self.granted();
        if granted.is_empty() {
            return Err(self.revoked().await);
        }
        match place.product() {
            Some(p) if !granted.iter().any(|g| g == p) => Err(denied(format!(
                "no data permit in force grants you the data product {p}"
            ))),
            _ => Ok(()),
        }
    }

    fn s3(&self) -> Result<aws_sdk_s3::Client, StatusReply> {
        self.products
            .s3()
            .ok_or_else(|| failure("reading", "no client"))
    }

    /// The attributes of `place`: a directory, or an object's size and time.
    async fn attributes(&self, place: &Place) -> Result<FileAttributes, StatusReply> {
        self.check(place).await?;
        let Place::Inside(product, key) = place else {
            return Ok(dir_attrs());
        };
        if !plain_key(key) {
            return Err(StatusCode::NoSuchFile.into());
        }
        let s3 = self.s3()?;
        let full = format!("{product}/{key}");
        match s3
            .head_object()
            .bucket(self.products.bucket())
            .key(&full)
            .send()
            .await
        {
            Ok(head) => Ok(file_attrs(
                u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0),
                unix_time(head.last_modified()),
            )),
            Err(e) if e.code() == Some("NotFound") || e.code() == Some("NoSuchKey") => {
                let under = s3
                    .list_objects_v2()
                    .bucket(self.products.bucket())
                    .prefix(format!("{full}/"))
                    .max_keys(1)
                    .send()
                    .await
                    .map_err(|e| failure("listing", aws_sdk_s3::error::DisplayErrorContext(e)))?;
                if under.key_count().unwrap_or(0) > 0 {
                    Ok(dir_attrs())
                } else {
                    Err(StatusCode::NoSuchFile.into())
                }
            }
            Err(e) => Err(failure(
                "reading",
                aws_sdk_s3::error::DisplayErrorContext(e),
            )),
        }
    }

    /// The entries of `place`: the granted products at the root, else the objects and
    /// "directories" one level under the prefix.
    async fn entries(&self, place: &Place) -> Result<Vec<File>, StatusReply> {
        self.check(place).await?;
        let prefix = match place {
            Place::Root => {
                return Ok(self
                    .granted()
                    .into_iter()
                    .map(|p| File::new(p, dir_attrs()))
                    .collect());
            }
            Place::Product(p) => format!("{p}/"),
            Place::Inside(p, k) if plain_key(k) => format!("{p}/{k}/"),
            Place::Inside(..) => return Err(StatusCode::NoSuchFile.into()),
        };
        let s3 = self.s3()?;
        let mut pages = s3
            .list_objects_v2()
            .bucket(self.products.bucket())
            .prefix(&prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| failure("listing", aws_sdk_s3::error::DisplayErrorContext(e)))?;
            for p in page.common_prefixes() {
                if let Some(name) = p
                    .prefix()
                    .and_then(|p| p.strip_prefix(&prefix))
                    .map(|n| n.trim_end_matches('/'))
                    .filter(|n| !n.is_empty())
                {
                    out.push(File::new(name, dir_attrs()));
                }
            }
            for o in page.contents() {
                if let Some(name) = o
                    .key()
                    .and_then(|k| k.strip_prefix(&prefix))
                    .filter(|n| !n.is_empty())
                {
                    out.push(File::new(
                        name,
                        file_attrs(
                            u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                            unix_time(o.last_modified()),
                        ),
                    ));
                }
            }
            if out.len() >= MAX_LISTED {
                break;
            }
        }
        out.truncate(MAX_LISTED);
        if out.is_empty() && matches!(place, Place::Inside(..)) {
            return Err(StatusCode::NoSuchFile.into());
        }
        Ok(out)
    }

    fn handle(&mut self, opened: Opened) -> String {
        self.next += 1;
        let handle = self.next.to_string();
        self.open.insert(handle.clone(), opened);
        handle
    }

    /// Refuses a change (the server is read-only) and records the attempt.
    fn read_only(&self, operation: &'static str, path: &str) -> StatusReply {
        let reply = denied("the data products are read-only");
        self.record(operation, &Place::of(path), Err(&reply));
        reply
    }
}

impl Reading {
    /// Up to `len` bytes from `offset`, continuing the current GET when it is already there.
    async fn read(
        &mut self,
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, StatusReply> {
        if offset >= self.size {
            return Err(StatusCode::Eof.into());
        }
        if self.body.is_none() || self.position != offset {
            let got = s3
                .get_object()
                .bucket(bucket)
                .key(format!("{}/{}", self.product, self.key))
                .range(format!("bytes={offset}-"))
                .send()
                .await
                .map_err(|e| failure("reading", aws_sdk_s3::error::DisplayErrorContext(e)))?;
            self.body = Some(got.body);
            self.position = offset;
            self.pending = Bytes::new();
        }
        let want =
            usize::try_from(u64::from(len).min(MAX_READ).min(self.size - offset)).unwrap_or(0);
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            if self.pending.is_empty() {
                let Some(body) = self.body.as_mut() else {
                    break;
                };
                match body.next().await {
                    Some(Ok(chunk)) => self.pending = chunk,
                    Some(Err(e)) => {
                        self.body = None;
                        return Err(failure("reading", e));
                    }
                    None => break,
                }
            }
            let take = (want - out.len()).min(self.pending.len());
            out.extend_from_slice(&self.pending.split_to(take));
        }
        if out.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        self.position += out.len() as u64;
        self.sent += out.len() as u64;
        Ok(out)
    }
}

impl russh_sftp::server::Handler for Sftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    /// Offers OpenSSH's `limits@openssh.com`, so that its client reads in pieces of almost
    /// 256 KiB rather than 32 KiB.
    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        let mut version = Version::new();
        version.extensions.insert(LIMITS.into(), "1".into());
        Ok(version)
    }

    async fn extended(
        &mut self,
        id: u32,
        request: String,
        _data: Vec<u8>,
    ) -> Result<Packet, Self::Error> {
        if request != LIMITS {
            return Err(StatusCode::OpUnsupported.into());
        }
        let limits = LimitsExtension {
            max_packet_len: MAX_PACKET,
            max_read_len: MAX_READ,
            max_write_len: 32_768,
            max_open_handles: 64,
        };
        let data = russh_sftp::ser::to_bytes(&limits)
            .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?;
        Ok(Packet::ExtendedReply(ExtendedReply {
            id,
            data: data.to_vec(),
        }))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        Ok(Name {
            id,
            files: vec![File::dummy(Place::of(&path).path())],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let place = Place::of(&path);
        let attrs = self.attributes(&place).await;
        if let Err(e) = &attrs
            && e.status_code == StatusCode::PermissionDenied
        {
            self.record("stat", &place, Err(e));
        }
        Ok(Attrs { id, attrs: attrs? })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        match self.open.get(&handle) {
            Some(Opened::File(r)) => Ok(Attrs {
                id,
                attrs: file_attrs(r.size, None),
            }),
            Some(Opened::Dir { .. }) => Ok(Attrs {
                id,
                attrs: dir_attrs(),
            }),
            None => Err(StatusCode::Failure.with_message("no such handle")),
        }
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let place = Place::of(&path);
        let entries = self.entries(&place).await;
        self.record("list", &place, entries.as_ref().map(|_| ()));
        let handle = self.handle(Opened::Dir {
            entries: entries?,
            sent: 0,
        });
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.open.get_mut(&handle) {
            Some(Opened::Dir { entries, sent }) if *sent < entries.len() => {
                let end = (*sent + ENTRIES_PER_ANSWER).min(entries.len());
                let files = entries[*sent..end].to_vec();
                *sent = end;
                Ok(Name { id, files })
            }
            Some(Opened::Dir { .. }) => Err(StatusCode::Eof.into()),
            _ => Err(StatusCode::Failure.with_message("no such handle")),
        }
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        if pflags.intersects(
            OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE,
        ) {
            return Err(self.read_only("write", &filename));
        }
        let place = Place::of(&filename);
        let attrs = self.attributes(&place).await;
        let size = match (&place, attrs) {
            (Place::Inside(..), Ok(a)) if a.permissions == Some(0o100_444) => {
                Ok(a.size.unwrap_or(0))
            }
            (_, Ok(_)) => Err(StatusCode::Failure.with_message("not a file")),
            (_, Err(e)) => Err(e),
        };
        let size = match size {
            Ok(size) => size,
            Err(e) => {
                self.record("read", &place, Err(&e));
                return Err(e);
            }
        };
        let Place::Inside(product, key) = place else {
            return Err(StatusCode::Failure.with_message("not a file"));
        };
        let handle = self.handle(Opened::File(Reading {
            product,
            key,
            size,
            position: 0,
            body: None,
            pending: Bytes::new(),
            sent: 0,
        }));
        Ok(Handle { id, handle })
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let s3 = self.s3()?;
        let bucket = self.products.bucket().to_string();
        let granted = self.granted();
        let Some(Opened::File(r)) = self.open.get_mut(&handle) else {
            return Err(StatusCode::Failure.with_message("no such handle"));
        };
        if granted.is_empty() {
            return Err(self.revoked().await);
        }
        if !granted.contains(&r.product) {
            return Err(denied(format!(
                "the data permit no longer grants the data product {}",
                r.product
            )));
        }
        let data = r.read(&s3, &bucket, offset, len).await?;
        Ok(Data { id, data })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        if let Some(Opened::File(r)) = self.open.remove(&handle) {
            self.record_read(&r, None);
        }
        Ok(Status {
            id,
            status_code: StatusCode::Ok,
            error_message: "Ok".into(),
            language_tag: "en".into(),
        })
    }

    async fn write(
        &mut self,
        _id: u32,
        _handle: String,
        _offset: u64,
        _data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        Err(denied("the data products are read-only"))
    }

    async fn setstat(
        &mut self,
        _id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(self.read_only("setstat", &path))
    }

    async fn fsetstat(
        &mut self,
        _id: u32,
        _handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(denied("the data products are read-only"))
    }

    async fn remove(&mut self, _id: u32, filename: String) -> Result<Status, Self::Error> {
        Err(self.read_only("remove", &filename))
    }

    async fn mkdir(
        &mut self,
        _id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(self.read_only("mkdir", &path))
    }

    async fn rmdir(&mut self, _id: u32, path: String) -> Result<Status, Self::Error> {
        Err(self.read_only("rmdir", &path))
    }

    async fn rename(
        &mut self,
        _id: u32,
        oldpath: String,
        _newpath: String,
    ) -> Result<Status, Self::Error> {
        Err(self.read_only("rename", &oldpath))
    }

    async fn symlink(
        &mut self,
        _id: u32,
        linkpath: String,
        _targetpath: String,
    ) -> Result<Status, Self::Error> {
        Err(self.read_only("symlink", &linkpath))
    }
}

/// Accepts connections for the shared state.
struct Server(Shared);

impl russh::server::Server for Server {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            shared: self.0.clone(),
            id: self.0.next.fetch_add(1, Ordering::Relaxed),
            peer,
            login: None,
            channels: HashMap::new(),
        }
    }
}

/// The SSH server's settings: public-key logins only, the host key from OpenBao.
fn config(host_key: russh::keys::PrivateKey) -> russh::server::Config {
    russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: 6,
        inactivity_timeout: Some(Duration::from_secs(1800)),
        keepalive_interval: Some(Duration::from_secs(30)),
        nodelay: true,
        ..Default::default()
    }
}

/// Runs the SFTP server on `listen` until `shutdown`. It follows the permits, logs in to
/// OpenBao for its credential and host key (`host_key`: `<namespace>/<mount>/data/<path>`),
/// and only then listens, so that a TCP connect says it is ready.
pub async fn run(
    client: kube::Client,
    settings: super::Settings,
    host_key: String,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(%listen, hub = %settings.hub, "starting");
    let (store, permits) = settings.follow_permits(client).await?;
    let (s3, key) = super::until_ok("logging in to OpenBao", || async {
        let (token, s3) = settings.login().await?;
        let stored: HostKey =
            crate::jobs::read_secret_at(&settings.openbao_addr, &token, &host_key, "SFTP host key")
                .await?;
        let key = russh::keys::PrivateKey::from_openssh(stored.private_key.as_str())
            .map_err(|e| anyhow::anyhow!("the SFTP host key does not parse: {e}"))?;
        Ok((s3, key))
    })
    .await;
    let products = Products::new(
        Channel::Sftp,
        &settings.hub,
        &settings.bucket,
        store,
        s3,
        AuditSink::to(super::STREAM, std::io::stdout()),
    );
    products.keep_counts(permits);
    let shared = Shared {
        products: products.clone(),
        sessions: Arc::default(),
        next: Arc::default(),
    };
    let sweeping = shared.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            sweeping.sweep().await;
        }
    });
    let refreshing = settings.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CREDENTIAL_REFRESH).await;
            match refreshing.login().await {
                Ok((_, s3)) => products.replace_s3(s3),
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "could not log in to OpenBao again; keeping the current credential"
                ),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, hub = %settings.hub, "serving the hub's data products over SFTP");
    let mut server = Server(shared);
    let running =
        russh::server::Server::run_on_socket(&mut server, Arc::new(config(key)), &listener);
    let stop = running.handle();
    tokio::select! {
        served = running => served?,
        () = shutdown => stop.shutdown("the server is stopping".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_leave_the_root() {
        assert_eq!(Place::of("."), Place::Root);
        assert_eq!(Place::of("/../.."), Place::Root);
        assert_eq!(Place::of("a"), Place::Product("a".into()));
        assert_eq!(
            Place::of("/a/../b/./c//d"),
            Place::Inside("b".into(), "c/d".into())
        );
        assert_eq!(Place::of("/a/b/../../../x").path(), "/x");
    }

    #[test]
    fn only_the_permits_own_key_in_force_gets_in() {
        let key = crate::controller::data_hub::exposure::HostKey::generate().expect("key");
        let other = crate::controller::data_hub::exposure::HostKey::generate().expect("key");
        let public = PublicKey::from_openssh(&key.public_key).expect("parse");
        let permit = |line: &str, until: &str| -> DataPermit {
            DataPermit::new(
                "p",
                serde_json::from_value(serde_json::json!({
                    "dataHub": {"name": "h"},
                    "products": ["a"],
                    "purpose": "research",
                    "holder": {"name": "A group", "sshPublicKey": line},
                    "issuedBy": {"name": "The access body", "uri": "https://example.org/hdab", "email": "hdab@example.org"},
                    "validFrom": "2026-01-01T00:00:00Z",
                    "validUntil": until,
                }))
                .expect("spec"),
            )
        };
        let now: k8s_openapi::jiff::Timestamp = "2026-06-01T00:00:00Z".parse().expect("time");
        let good = permit(&key.public_key, "2027-01-01T00:00:00Z");
        assert!(admits(&good, "h", &public, now));
        assert!(!admits(&good, "other-hub", &public, now));
        assert!(!admits(
            &permit(&other.public_key, "2027-01-01T00:00:00Z"),
            "h",
            &public,
            now
        ));
        assert!(!admits(
            &permit(&key.public_key, "2026-05-01T00:00:00Z"),
            "h",
            &public,
            now
        ));
    }
}
