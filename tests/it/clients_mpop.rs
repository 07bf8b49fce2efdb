//! mpop against the standalone daemon: delivery to an mbox file, `--keep`, and its UIDL
//! file for "only new mail".

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use common::*;

struct Mpop {
    conf: PathBuf,
    mbox: PathBuf,
    uidls: PathBuf,
}

impl Mpop {
    fn new(f: &Fixture) -> Mpop {
        let conf = f.path().join("mpoprc");
        fs::write(&conf, "defaults\n").unwrap();
        // mpop refuses a configuration file others can read.
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
        Mpop {
            conf,
            mbox: f.path().join("mpop.mbox"),
            uidls: f.path().join("mpop.uidls"),
        }
    }

    fn fetch(&self, server: &Server, keep: bool, only_new: bool) {
        let (st, out, err) = run(Command::new("mpop")
            .arg("-C")
            .arg(&self.conf)
            .arg(format!(
                "--host={}",
                server.host().trim_matches(|c| c == '[' || c == ']')
            ))
            .arg(format!("--port={}", server.port()))
            .args([
                "--user=alice",
                "--passwordeval=echo secret",
                "--auth=user",
                "--tls=off",
                "--received-header=off",
            ])
            .arg(format!("--keep={}", if keep { "on" } else { "off" }))
            .arg(format!(
                "--only-new={}",
                if only_new { "on" } else { "off" }
            ))
            .arg(format!("--deliver=mbox,{}", self.mbox.display()))
            .arg(format!("--uidls-file={}", self.uidls.display())));
        assert!(
            st.success(),
            "mpop failed: {out}{err}\nlog:\n{}",
            server.log()
        );
    }

    /// The delivered messages: mpop writes mboxrd, so one `>` is removed again.
    fn delivered(&self) -> Vec<String> {
        let bytes = fs::read(&self.mbox).unwrap_or_default();
        split_mbox(&bytes)
            .iter()
            .map(|m| {
                show(m)
                    .split_inclusive('\n')
                    .map(|l| {
                        let quoted = l.trim_start_matches('>');
                        if l.starts_with('>') && quoted.starts_with("From ") {
                            &l[1..]
                        } else {
                            l
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

#[test]
fn mpop_keep_and_only_new() {
    if require("mpop").is_none() {
        return;
    }
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    let server = f.standalone();
    let m = Mpop::new(&f);
    m.fetch(&server, true, true);
    assert_eq!(m.delivered(), [MSG1, MSG2, MSG3]);
    assert_eq!(f.read_mbox("alice"), mbox(&[MSG1, MSG2, MSG3]));
    // mpop remembered the UIDLs: nothing is fetched twice.
    m.fetch(&server, true, true);
    assert_eq!(m.delivered().len(), 3);
    let uidls = fs::read_to_string(&m.uidls).unwrap();
    assert!(uidls.contains(" 3 "), "{uidls}");
    deliver(&f.mailbox("alice"), MSG1);
    // An identical copy of a message already seen is still new mail: it has its own UIDL.
    m.fetch(&server, true, true);
    assert_eq!(m.delivered(), [MSG1, MSG2, MSG3, MSG1]);
}

#[test]
fn mpop_fetch_and_delete() {
    if require("mpop").is_none() {
        return;
    }
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    let server = f.standalone();
    let m = Mpop::new(&f);
    m.fetch(&server, false, false);
    assert_eq!(m.delivered(), [MSG1, MSG2, MSG3]);
    assert_eq!(show(&f.read_mbox("alice")), "");
    m.fetch(&server, false, false);
    assert_eq!(m.delivered().len(), 3);
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}
