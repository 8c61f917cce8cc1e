//! Tree blobs: `{"nodes":[...]}` with restic's Node fields, Go omitempty rules, Go `FileMode`
//! bits and `strconv.Quote`d names, serialized byte-identically to restic (plus its trailing `\n`).

use serde::{Deserialize, Serialize};

use crate::gojson::{self, GoTime};
use crate::id::Id;

/// Go `fs.FileMode` bits (not POSIX `st_mode`).
pub mod mode {
    /// Directory.
    pub const DIR: u32 = 1 << 31;
    /// Append-only.
    pub const APPEND: u32 = 1 << 30;
    /// Exclusive use.
    pub const EXCLUSIVE: u32 = 1 << 29;
    /// Temporary file.
    pub const TEMPORARY: u32 = 1 << 28;
    /// Symbolic link.
    pub const SYMLINK: u32 = 1 << 27;
    /// Device file.
    pub const DEVICE: u32 = 1 << 26;
    /// Named pipe.
    pub const NAMED_PIPE: u32 = 1 << 25;
    /// Unix socket.
    pub const SOCKET: u32 = 1 << 24;
    /// Setuid.
    pub const SETUID: u32 = 1 << 23;
    /// Setgid.
    pub const SETGID: u32 = 1 << 22;
    /// Character device (with [`DEVICE`]).
    pub const CHAR_DEVICE: u32 = 1 << 21;
    /// Sticky.
    pub const STICKY: u32 = 1 << 20;
    /// Irregular file.
    pub const IRREGULAR: u32 = 1 << 19;
    /// Permission bits.
    pub const PERM: u32 = 0o777;

    /// Go `FileMode` from a POSIX `st_mode`.
    pub fn from_unix(st_mode: u32) -> u32 {
        let mut m = st_mode & PERM;
        m |= match st_mode & 0o170000 {
            0o040000 => DIR,
            0o120000 => SYMLINK,
            0o060000 => DEVICE,
            0o020000 => DEVICE | CHAR_DEVICE,
            0o010000 => NAMED_PIPE,
            0o140000 => SOCKET,
            _ => 0,
        };
        if st_mode & 0o4000 != 0 {
            m |= SETUID;
        }
        if st_mode & 0o2000 != 0 {
            m |= SETGID;
        }
        if st_mode & 0o1000 != 0 {
            m |= STICKY;
        }
        m
    }

    /// POSIX `st_mode` from a Go `FileMode`.
    pub fn to_unix(go: u32) -> u32 {
        let mut m = go & PERM;
        m |= if go & DIR != 0 {
            0o040000
        } else if go & SYMLINK != 0 {
            0o120000
        } else if go & DEVICE != 0 {
            if go & CHAR_DEVICE != 0 { 0o020000 } else { 0o060000 }
        } else if go & NAMED_PIPE != 0 {
            0o010000
        } else if go & SOCKET != 0 {
            0o140000
        } else {
            0o100000
        };
        if go & SETUID != 0 {
            m |= 0o4000;
        }
        if go & SETGID != 0 {
            m |= 0o2000;
        }
        if go & STICKY != 0 {
            m |= 0o1000;
        }
        m
    }
}

/// The kind of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    /// Regular file (has `content`).
    File,
    /// Directory (has `subtree`).
    Dir,
    /// Symbolic link.
    Symlink,
    /// Block device.
    Dev,
    /// Character device.
    Chardev,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Something else.
    Irregular,
}

impl NodeType {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::File => "file",
            NodeType::Dir => "dir",
            NodeType::Symlink => "symlink",
            NodeType::Dev => "dev",
            NodeType::Chardev => "chardev",
            NodeType::Fifo => "fifo",
            NodeType::Socket => "socket",
            NodeType::Irregular => "irregular",
        }
    }
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedAttribute {
    /// Attribute name.
    pub name: String,
    /// Attribute value (base64 in JSON).
    #[serde(with = "gojson::base64_bytes", default)]
    pub value: Vec<u8>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

mod quoted_name {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::gojson::go_quote(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = crate::gojson::go_unquote(&s).map_err(serde::de::Error::custom)?;
        // TODO: names that are not UTF-8 (possible on Linux) are kept lossily for now.
        Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }
}

mod opt_base64 {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => crate::gojson::base64_bytes::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let v = crate::gojson::base64_bytes::deserialize(d)?;
        Ok(if v.is_empty() { None } else { Some(v) })
    }
}

/// A file, directory or other item in a tree, field for field as restic's `Node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Name within its directory.
    #[serde(with = "quoted_name")]
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// Go `FileMode` (see [`mode`]).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    /// Modification time.
    #[serde(default)]
    pub mtime: GoTime,
    /// Access time.
    #[serde(default)]
    pub atime: GoTime,
    /// Change time.
    #[serde(default)]
    pub ctime: GoTime,
    /// Owner uid.
    #[serde(default)]
    pub uid: u32,
    /// Owner gid.
    #[serde(default)]
    pub gid: u32,
    /// Owner name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Group name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Inode number.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inode: u64,
    /// `st_dev` of the file.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub device_id: u64,
    /// Size in bytes (files).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub size: u64,
    /// Hard link count.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub links: u64,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub linktarget: String,
    /// Symlink target bytes when not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_base64")]
    pub linktarget_raw: Option<Vec<u8>>,
    /// Extended attributes.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub extended_attributes: Vec<ExtendedAttribute>,
    /// `st_rdev` for devices.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub device: u64,
    /// Data blob ids of a file, in order. Go writes `null` when unset (directories) and `[]` for
    /// an empty file.
    #[serde(default)]
    pub content: Option<Vec<Id>>,
    /// Tree blob of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Error recorded while reading the item.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl Node {
    /// A regular file node with the given metadata; set `content` and `size` afterwards.
    pub fn file(name: impl Into<String>, perm: u32, time: GoTime, uid: u32, gid: u32) -> Node {
        Node {
            name: name.into(),
            node_type: NodeType::File,
            mode: perm & mode::PERM,
            mtime: time,
            atime: time,
            ctime: time,
            uid,
            gid,
            user: String::new(),
            group: String::new(),
            inode: 0,
            device_id: 0,
            size: 0,
            links: 0,
            linktarget: String::new(),
            linktarget_raw: None,
            extended_attributes: Vec::new(),
            device: 0,
            content: Some(Vec::new()),
            subtree: None,
            error: String::new(),
        }
    }
}

/// A directory listing: nodes sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// The entries, sorted by name.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub nodes: Vec<Node>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

impl Tree {
    /// Add a node keeping the nodes sorted by name (byte order, as Go compares strings).
    pub fn insert(&mut self, node: Node) {
        let pos = self
            .nodes
            .partition_point(|n| n.name.as_bytes() < node.name.as_bytes());
        self.nodes.insert(pos, node);
    }

    /// The node with this name.
    pub fn find(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The blob plaintext exactly as restic writes it: Go JSON plus a newline.
    pub fn to_blob(&self) -> serde_json::Result<Vec<u8>> {
        let mut v = gojson::to_vec(self)?;
        v.push(b'\n');
        Ok(v)
    }

    /// Parse a tree blob.
    pub fn from_blob(data: &[u8]) -> serde_json::Result<Tree> {
        serde_json::from_slice(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree restic 0.14 wrote for `echo hello | restic backup --stdin --stdin-filename dumpfile.sql`.
    const RESTIC_TREE: &str = r#"{"nodes":[{"name":"dumpfile.sql","type":"file","mode":420,"mtime":"2026-11-22T02:26:25.020403809Z","atime":"2026-11-22T02:26:25.020403809Z","ctime":"2026-11-22T02:26:25.020403809Z","uid":0,"gid":0,"size":6,"content":["5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"]}]}
"#;

    #[test]
    fn restic_tree_round_trips_byte_for_byte() {
        let t = Tree::from_blob(RESTIC_TREE.as_bytes()).unwrap();
        assert_eq!(t.nodes[0].size, 6);
        assert_eq!(t.to_blob().unwrap(), RESTIC_TREE.as_bytes());
        assert_eq!(
            Id::hash(RESTIC_TREE.as_bytes()).to_hex(),
            "eae8ee8982c7aecb45b9a57fbcfec374c536b9152a752e00230e3c843ed4acf8"
        );
    }

    #[test]
    fn built_node_matches_restic_shape() {
        let time = GoTime::parse("2026-11-22T02:26:25.020403809Z").unwrap();
        let mut n = Node::file("dumpfile.sql", 0o644, time, 0, 0);
        n.size = 6;
        n.content = Some(vec![
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
                .parse()
                .unwrap(),
        ]);
        let mut t = Tree::default();
        t.insert(n);
        assert_eq!(t.to_blob().unwrap(), RESTIC_TREE.as_bytes());
    }

    #[test]
    fn dirs_have_null_content_and_sorted_nodes() {
        let time = GoTime::default();
        let mut t = Tree::default();
        let mut d = Node::file("b", 0o755, time, 1, 1);
        d.node_type = NodeType::Dir;
        d.mode = mode::DIR | 0o755;
        d.content = None;
        d.subtree = Some(Id::hash(b"x"));
        t.insert(d);
        t.insert(Node::file("a\"q", 0o600, time, 1, 1));
        let s = String::from_utf8(t.to_blob().unwrap()).unwrap();
        assert!(s.contains(r#""name":"a\\\"q""#), "{s}");
        assert!(s.contains(r#""mode":2147484141"#), "{s}");
        assert!(s.contains(r#""content":null,"subtree""#), "{s}");
        assert!(s.contains(r#""content":[]"#), "{s}");
        assert!(s.find("\"a\\").unwrap() < s.find("\"b\"").unwrap());
        let back = Tree::from_blob(s.as_bytes()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.nodes[0].name, "a\"q");
    }

    #[test]
    fn mode_conversion() {
        assert_eq!(mode::from_unix(0o040755), mode::DIR | 0o755);
        assert_eq!(mode::from_unix(0o120777), mode::SYMLINK | 0o777);
        assert_eq!(mode::from_unix(0o104755), mode::SETUID | 0o755);
        for m in [
            0o100644, 0o040700, 0o120777, 0o020600, 0o060600, 0o010644, 0o140755, 0o101755,
        ] {
            assert_eq!(mode::to_unix(mode::from_unix(m)), m);
        }
    }
}
