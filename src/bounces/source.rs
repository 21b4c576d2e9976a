//! Reading the messages of a SOURCE (Maildir, mbox, one file, or stdin) with a size limit and without leaving the folder.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Messages larger than this are skipped as unrecognised by default.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 10 * 1024 * 1024;

/// Lines of an mbox are read in pieces of at most this size, so one enormous
/// line cannot make us hold more than the message limit plus this.
const MBOX_CHUNK: u64 = 64 * 1024;

/// Where reports are read from, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A folder with `new/` and `cur/`; only `new/` is read.
    Maildir(PathBuf),
    /// A file of messages, each starting with a `From ` line.
    Mbox(PathBuf),
    /// A file holding one message.
    File(PathBuf),
    /// `-`: one message on standard input.
    Stdin,
}

/// A SOURCE that cannot be read at all. The command maps this to exit 2.
#[derive(Debug)]
pub enum SourceError {
    NotFound(PathBuf),
    Unreadable(PathBuf, io::Error),
    /// A folder without `new/` and `cur/`.
    NotAMaildir(PathBuf),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::NotFound(path) => write!(f, "source `{}` does not exist", path.display()),
            SourceError::Unreadable(path, error) => {
                write!(f, "cannot read source `{}`: {error}", path.display())
            }
            SourceError::NotAMaildir(path) => write!(
                f,
                "source `{}` is a folder but not a Maildir (no `new/` and `cur/`)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::Unreadable(_, error) => Some(error),
            _ => None,
        }
    }
}

impl Source {
    /// Decides what kind of SOURCE `arg` is: `-`, a Maildir folder, an mbox
    /// (a file whose first line starts with `From `), or a single message.
    pub fn open(arg: &str) -> Result<Source, SourceError> {
        if arg == "-" {
            return Ok(Source::Stdin);
        }
        let path = PathBuf::from(arg);
        // The operator named this path, so following a symlink here is intended.
        let metadata = fs::metadata(&path).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => SourceError::NotFound(path.clone()),
            _ => SourceError::Unreadable(path.clone(), error),
        })?;
        if metadata.is_dir() {
            if path.join("new").is_dir() && path.join("cur").is_dir() {
                return Ok(Source::Maildir(path));
            }
            return Err(SourceError::NotAMaildir(path));
        }
        let mut start = [0u8; 5];
        let read = File::open(&path)
            .and_then(|file| file.take(5).read(&mut start))
            .map_err(|error| SourceError::Unreadable(path.clone(), error))?;
        if &start[..read] == b"From " {
            Ok(Source::Mbox(path))
        } else {
            Ok(Source::File(path))
        }
    }

    /// The messages of this source, one at a time, each read only after the
    /// previous one is handed out, so memory stays within one message.
    ///
    /// For a Maildir each message is claimed (see [`MaildirClaim`]) before it is read.
    pub fn messages(&self, max_bytes: u64) -> Result<Messages, SourceError> {
        let inner = match self {
            Source::Maildir(dir) => {
                let new = dir.join("new");
                let listing = fs::read_dir(&new).map_err(|error| SourceError::Unreadable(new.clone(), error))?;
                let mut names = Vec::new();
                for entry in listing {
                    let entry = entry.map_err(|error| SourceError::Unreadable(new.clone(), error))?;
                    names.push(entry.file_name());
                }
                // Oldest first, since Maildir names start with the delivery time.
                names.sort();
                Inner::Maildir {
                    dir: dir.clone(),
                    names: names.into_iter(),
                }
            }
            Source::Mbox(path) => {
                let file = File::open(path).map_err(|error| SourceError::Unreadable(path.clone(), error))?;
                Inner::Mbox(MboxReader::new(path.clone(), Box::new(BufReader::new(file))))
            }
            Source::File(path) => Inner::Single(Some(path.clone())),
            Source::Stdin => Inner::Stdin(true),
        };
        Ok(Messages { inner, max_bytes })
    }
}

/// One message of a source, or a reason it was passed over.
#[derive(Debug)]
pub enum Entry {
    Message(Message),
    /// Not a message we may read (a symlink, a folder, unreadable).
    /// Counted and named in a warning; nothing is moved.
    Skipped {
        label: String,
        reason: String,
    },
    /// A Maildir message another run claimed between our listing and our
    /// claim: it is that run's to read, and nothing is wrong with it.
    Taken {
        label: String,
    },
}

/// One message, named for warnings (file name, or `mbox:NUMBER`).
#[derive(Debug)]
pub struct Message {
    pub label: String,
    pub body: Body,
    /// Set for a Maildir message: settle it once judged.
    pub claim: Option<MaildirClaim>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    Bytes(Vec<u8>),
    /// Over the limit: not read whole, to be counted as unrecognised.
    TooLarge {
        at_least: u64,
    },
}

/// The messages of a source; see [`Source::messages`].
pub struct Messages {
    inner: Inner,
    max_bytes: u64,
}

enum Inner {
    Maildir {
        dir: PathBuf,
        names: std::vec::IntoIter<std::ffi::OsString>,
    },
    Mbox(MboxReader),
    Single(Option<PathBuf>),
    Stdin(bool),
}

impl Iterator for Messages {
    /// An error here means the source stopped being readable part way.
    type Item = Result<Entry, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let max = self.max_bytes;
        match &mut self.inner {
            Inner::Maildir { dir, names } => {
                let name = names.next()?;
                Some(Ok(claim_and_read(dir, &name, max)))
            }
            Inner::Mbox(reader) => reader.next_message(max).transpose(),
            Inner::Single(path) => {
                let path = path.take()?;
                Some(read_file(&path, max).map(|body| {
                    Entry::Message(Message {
                        label: path.display().to_string(),
                        body,
                        claim: None,
                    })
                }))
            }
            Inner::Stdin(pending) => {
                if !std::mem::take(pending) {
                    return None;
                }
                let stdin = io::stdin();
                Some(
                    read_stream(&mut stdin.lock(), max, true)
                        .map(|body| {
                            Entry::Message(Message {
                                label: "stdin".into(),
                                body,
                                claim: None,
                            })
                        })
                        .map_err(|error| SourceError::Unreadable("-".into(), error)),
                )
            }
        }
    }
}

/// A Maildir message this run has claimed by renaming it from `new/` to `cur/`.
///
/// Why claim first: rename(2) within one folder is atomic, so when two cron
/// hosts share a Maildir exactly one of them moves a given file; the other gets
/// `NotFound` and passes it over as "taken by another run". Reading first and
/// moving after would let both hosts read and judge the same report. While
/// claimed, the file sits in `cur/` under its plain name (no `:2,` flags),
/// which other Maildir readers show as unread.
///
/// Settle it with [`MaildirClaim::processed`] (→ `cur/NAME:2,S`) or
/// [`MaildirClaim::flagged`] (→ `cur/NAME:2,F`, for mail that is no report).
/// Dropping an unsettled claim puts it back in `new/`, so a report that could
/// not be recorded, or an error on the way out, leaves the report where the
/// next run finds it. Only a crash between claim and settle leaves it in `cur/`
/// without flags.
#[derive(Debug)]
pub struct MaildirClaim {
    new_path: PathBuf,
    claimed_path: PathBuf,
    settled: bool,
}

impl MaildirClaim {
    /// Marks the report done: `cur/NAME:2,S` (the seen flag).
    pub fn processed(self) -> io::Result<()> {
        self.settle_with_flag('S')
    }

    /// Where [`MaildirClaim::processed`] puts the report.
    pub fn processed_path(&self) -> PathBuf {
        self.path_with_flag('S')
    }

    /// Sets aside mail that is no report: `cur/NAME:2,F` (the flagged flag),
    /// kept for a person to look at, and never read again, since only `new/`
    /// is read.
    pub fn flagged(self) -> io::Result<()> {
        self.settle_with_flag('F')
    }

    fn settle_with_flag(mut self, flag: char) -> io::Result<()> {
        self.settled = true;
        fs::rename(&self.claimed_path, self.path_with_flag(flag))
    }

    fn path_with_flag(&self, flag: char) -> PathBuf {
        let name = self.claimed_path.file_name().unwrap_or_default().to_string_lossy();
        self.claimed_path.with_file_name(with_flag(&name, flag))
    }
}

/// `NAME` → `NAME:2,S` (for `flag` S); a name that already has an info part
/// keeps its flags, with `flag` added in the sorted place the Maildir
/// convention asks for.
fn with_flag(name: &str, flag: char) -> String {
    match name.split_once(":2,") {
        Some((base, flags)) => {
            let mut flags: Vec<char> = flags.chars().filter(|c| c.is_ascii_alphabetic()).collect();
            if !flags.contains(&flag) {
                flags.push(flag);
            }
            flags.sort_unstable();
            flags.dedup();
            format!("{base}:2,{}", flags.into_iter().collect::<String>())
        }
        None => format!("{name}:2,{flag}"),
    }
}

impl Drop for MaildirClaim {
    fn drop(&mut self) {
        if !self.settled {
            // Best effort: the report stays readable in cur/ if this fails.
            let _ = fs::rename(&self.claimed_path, &self.new_path);
        }
    }
}

fn claim_and_read(dir: &Path, name: &std::ffi::OsStr, max: u64) -> Entry {
    let label = name.to_string_lossy().into_owned();
    let skipped = |reason: String| Entry::Skipped {
        label: label.clone(),
        reason,
    };
    // A name from read_dir has no `/`; refuse `.`/`..` and dotfiles so that every
    // path we touch is a direct child of new/ or cur/.
    if label.starts_with('.') || name.to_str().is_some_and(|n| n.contains('/')) {
        return skipped("not a Maildir message name".into());
    }
    let new_path = dir.join("new").join(name);
    // symlink_metadata does not follow a link: a symlink to /etc/passwd is seen as a link.
    match fs::symlink_metadata(&new_path) {
        Ok(meta) if meta.file_type().is_file() => {}
        Ok(meta) if meta.file_type().is_symlink() => {
            return skipped("a symlink, not a regular file; left in new/".into());
        }
        Ok(_) => return skipped("not a regular file; left in new/".into()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Entry::Taken { label },
        Err(error) => return skipped(format!("cannot inspect: {error}")),
    }
    let claimed_path = dir.join("cur").join(name);
    if let Err(error) = fs::rename(&new_path, &claimed_path) {
        return match error.kind() {
            io::ErrorKind::NotFound => Entry::Taken { label },
            _ => skipped(format!("cannot move to cur/: {error}")),
        };
    }
    let claim = MaildirClaim {
        new_path,
        claimed_path,
        settled: false,
    };
    // The file could have been swapped for a link between the check and the
    // rename; check again on the claimed path, and open without following links.
    match fs::symlink_metadata(&claim.claimed_path) {
        Ok(meta) if meta.file_type().is_file() => {}
        _ => return skipped("changed while being claimed; put back in new/".into()),
    }
    match read_file_no_follow(&claim.claimed_path, max) {
        Ok(body) => Entry::Message(Message {
            label,
            body,
            claim: Some(claim),
        }),
        Err(error) => skipped(format!("cannot read: {error}")),
    }
}

fn read_file_no_follow(path: &Path, max: u64) -> io::Result<Body> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    read_open_file(file, max)
}

fn read_file(path: &Path, max: u64) -> Result<Body, SourceError> {
    let file = File::open(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => SourceError::NotFound(path.into()),
        _ => SourceError::Unreadable(path.into(), error),
    })?;
    read_open_file(file, max).map_err(|error| SourceError::Unreadable(path.into(), error))
}

fn read_open_file(file: File, max: u64) -> io::Result<Body> {
    let size = file.metadata()?.len();
    if size > max {
        return Ok(Body::TooLarge { at_least: size });
    }
    // The file may grow after the check; read_stream stops at the limit anyway.
    read_stream(&mut BufReader::new(file), max, false)
}

/// Reads one message of at most `max` bytes. Over the limit, the rest is
/// skipped when `drain` (a mail server writing to our stdin expects it all to
/// be taken), and the message is reported as too large.
fn read_stream(reader: &mut impl BufRead, max: u64, drain: bool) -> io::Result<Body> {
    let mut bytes = Vec::new();
    reader.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        let mut total = bytes.len() as u64;
        if drain {
            total += io::copy(reader, &mut io::sink())?;
        }
        return Ok(Body::TooLarge { at_least: total });
    }
    Ok(Body::Bytes(strip_mbox_from_line(bytes)))
}

/// Drops a leading mbox `From ` line, as pipe(8) with the `F` flag writes.
pub fn strip_mbox_from_line(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.starts_with(b"From ") {
        let end = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |at| at + 1);
        bytes.drain(..end);
    }
    bytes
}

/// Splits an mbox into messages as it streams: a message starts at a line
/// beginning `From ` at the start of the file or after a blank line, and
/// `>From ` quoting (mboxrd: any number of `>`) loses one `>`.
pub struct MboxReader {
    path: PathBuf,
    reader: Box<dyn BufRead>,
    /// The separator line of the next message has been read already.
    at_separator: bool,
    started: bool,
    count: usize,
    done: bool,
}

impl MboxReader {
    pub fn new(path: PathBuf, reader: Box<dyn BufRead>) -> MboxReader {
        MboxReader {
            path,
            reader,
            at_separator: false,
            started: false,
            count: 0,
            done: false,
        }
    }

    /// Reads up to `MBOX_CHUNK` bytes of one line; the bool says whether the line ended.
    fn read_piece(&mut self, piece: &mut Vec<u8>) -> io::Result<bool> {
        piece.clear();
        (&mut self.reader).take(MBOX_CHUNK).read_until(b'\n', piece)?;
        Ok(piece.last() == Some(&b'\n'))
    }

    /// The next message, or None at the end of the file.
    pub fn next_message(&mut self, max: u64) -> Result<Option<Entry>, SourceError> {
        let unreadable = |path: &Path, error| SourceError::Unreadable(path.to_path_buf(), error);
        if self.done {
            return Ok(None);
        }
        let mut piece = Vec::new();
        // Skip to the first separator (text before it is not a message).
        if !self.started {
            self.started = true;
            loop {
                let ended = self.read_piece(&mut piece).map_err(|e| unreadable(&self.path, e))?;
                if piece.is_empty() {
                    self.done = true;
                    return Ok(None);
                }
                if piece.starts_with(b"From ") {
                    self.at_separator = true;
                    self.skip_rest_of_line(ended, &mut piece)?;
                    break;
                }
                self.skip_rest_of_line(ended, &mut piece)?;
            }
        }
        if !self.at_separator {
            self.done = true;
            return Ok(None);
        }
        self.at_separator = false;
        self.count += 1;
        let label = format!("{}:{}", self.path.display(), self.count);
        let mut bytes = Vec::new();
        let mut size: u64 = 0;
        let mut at_line_start = true;
        let mut previous_line_blank = false;
        loop {
            let ended = self.read_piece(&mut piece).map_err(|e| unreadable(&self.path, e))?;
            if piece.is_empty() {
                self.done = true;
                break;
            }
            if at_line_start && previous_line_blank && piece.starts_with(b"From ") {
                self.at_separator = true;
                self.skip_rest_of_line(ended, &mut piece)?;
                // The blank line before the separator belongs to the mbox, not the message.
                if bytes.ends_with(b"\r\n") {
                    bytes.truncate(bytes.len() - 2);
                } else if bytes.ends_with(b"\n") {
                    bytes.pop();
                }
                break;
            }
            let mut content: &[u8] = &piece;
            if at_line_start {
                let quotes = content.iter().take_while(|&&b| b == b'>').count();
                if quotes > 0 && content[quotes..].starts_with(b"From ") {
                    content = &content[1..];
                }
            }
            let line_is_blank = at_line_start && (content == b"\n" || content == b"\r\n");
            size += content.len() as u64;
            if size <= max {
                bytes.extend_from_slice(content);
            } else if !bytes.is_empty() {
                // Over the limit: keep counting to the next separator, hold nothing.
                bytes = Vec::new();
            }
            at_line_start = ended;
            if ended {
                previous_line_blank = line_is_blank;
            }
        }
        let body = if size > max {
            Body::TooLarge { at_least: size }
        } else {
            Body::Bytes(bytes)
        };
        Ok(Some(Entry::Message(Message {
            label,
            body,
            claim: None,
        })))
    }

    fn skip_rest_of_line(&mut self, mut ended: bool, piece: &mut Vec<u8>) -> Result<(), SourceError> {
        while !ended {
            ended = self
                .read_piece(piece)
                .map_err(|error| SourceError::Unreadable(self.path.clone(), error))?;
            if piece.is_empty() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbox_bodies(text: &[u8], max: u64) -> Vec<Body> {
        let mut reader = MboxReader::new("test.mbox".into(), Box::new(io::Cursor::new(text.to_vec())));
        let mut bodies = Vec::new();
        while let Some(entry) = reader.next_message(max).expect("readable") {
            match entry {
                Entry::Message(message) => bodies.push(message.body),
                other => panic!("not a message: {other:?}"),
            }
        }
        bodies
    }

    #[test]
    fn mbox_splits_on_from_lines_after_blank_lines_and_unquotes() {
        let text = b"From a@b Mon Jan 1 00:00:00 2024\nSubject: one\n\nbody\n>From here\n>>From there\nFrom not a separator\n\nFrom b@c Mon Jan 1 00:00:01 2024\nSubject: two\n\nx\n";
        let bodies = mbox_bodies(text, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(
            bodies,
            vec![
                Body::Bytes(b"Subject: one\n\nbody\nFrom here\n>From there\nFrom not a separator\n".to_vec()),
                Body::Bytes(b"Subject: two\n\nx\n".to_vec()),
            ]
        );
    }

    #[test]
    fn mbox_message_over_the_limit_is_too_large_and_the_next_is_read() {
        let mut text = b"From a@b x\nSubject: big\n\n".to_vec();
        text.extend(std::iter::repeat_n(b'a', 500_000));
        text.extend_from_slice(b"\n\nFrom b@c y\nSubject: small\n\nok\n");
        let bodies = mbox_bodies(&text, 1000);
        assert!(matches!(bodies[0], Body::TooLarge { at_least } if at_least > 1000));
        assert_eq!(bodies[1], Body::Bytes(b"Subject: small\n\nok\n".to_vec()));
    }

    #[test]
    fn empty_mbox_has_no_messages() {
        assert!(mbox_bodies(b"", 100).is_empty());
        assert!(mbox_bodies(b"no separator at all\n", 100).is_empty());
    }

    #[test]
    fn stream_over_the_limit_is_drained_and_too_large() {
        let mut input = io::Cursor::new(vec![b'x'; 5000]);
        let body = read_stream(&mut input, 100, true).expect("readable");
        assert_eq!(body, Body::TooLarge { at_least: 5000 });
        let body = read_stream(&mut io::Cursor::new(b"From x\nA: b\n\nc".to_vec()), 100, false).expect("readable");
        assert_eq!(body, Body::Bytes(b"A: b\n\nc".to_vec()));
    }

    #[test]
    fn missing_source_is_not_found() {
        assert!(matches!(Source::open("/no/such/path"), Err(SourceError::NotFound(_))));
        assert_eq!(Source::open("-").ok(), Some(Source::Stdin));
    }

    #[test]
    fn maildir_claims_regular_files_and_skips_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::NamedTempFile::new().expect("outside file");
        fs::write(outside.path(), b"secret").expect("write");
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        fs::write(dir.path().join("new/1.a"), b"Subject: hi\n\nbody\n").expect("write");
        fs::write(dir.path().join("new/2.b"), b"Subject: again\n\nbody\n").expect("write");
        fs::write(dir.path().join("new/3.big"), vec![b'x'; 2000]).expect("write");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("new/4.link")).expect("symlink");
        fs::create_dir(dir.path().join("new/5.dir")).expect("mkdir");

        let source = Source::open(dir.path().to_str().expect("utf-8 path")).expect("a maildir");
        let mut skipped = Vec::new();
        for entry in source.messages(1000).expect("listable") {
            match entry.expect("readable") {
                Entry::Message(message) => {
                    let claim = message.claim.expect("maildir claim");
                    match message.label.as_str() {
                        "1.a" => claim.processed().expect("rename"),
                        "2.b" => claim.flagged().expect("rename"),
                        "3.big" => {
                            assert!(matches!(message.body, Body::TooLarge { .. }));
                            drop(claim); // an unsettled claim goes back to new/
                        }
                        other => panic!("unexpected message {other}"),
                    }
                }
                Entry::Skipped { label, .. } => skipped.push(label),
                Entry::Taken { label } => panic!("{label}: nobody else took it"),
            }
        }
        assert_eq!(skipped, ["4.link", "5.dir"]);
        assert!(dir.path().join("cur/1.a:2,S").is_file());
        assert!(dir.path().join("cur/2.b:2,F").is_file());
        assert!(dir.path().join("new/3.big").is_file());
        assert!(dir.path().join("new/4.link").is_symlink());
        assert_eq!(fs::read(outside.path()).expect("read"), b"secret");
    }

    #[test]
    fn a_message_another_run_took_first_is_taken_not_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        fs::write(dir.path().join("new/1.a"), b"Subject: hi\n\nbody\n").expect("write");
        let source = Source::open(dir.path().to_str().expect("utf-8 path")).expect("a maildir");
        let mut entries = source.messages(1000).expect("listable");
        // Between this run's listing and its claim, another run claims it.
        fs::rename(dir.path().join("new/1.a"), dir.path().join("cur/1.a")).expect("rename");
        let entry = entries.next().expect("one entry").expect("readable");
        assert!(matches!(&entry, Entry::Taken { label } if label == "1.a"), "{entry:?}");
        assert!(dir.path().join("cur/1.a").is_file(), "left to the other run");
    }

    fn only_message(source: &Source, max: u64) -> Body {
        let mut entries = source.messages(max).expect("readable");
        let body = match entries.next().expect("one entry").expect("readable") {
            Entry::Message(message) => message.body,
            other => panic!("not a message: {other:?}"),
        };
        assert!(entries.next().is_none(), "more than one message");
        body
    }

    #[test]
    fn single_files_with_and_without_a_from_line_are_read() {
        let dsn = crate::bounces::samples::sample("postfix_dsn");
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain.eml");
        fs::write(&plain, dsn).expect("write");
        let piped = dir.path().join("piped.eml");
        let mut with_from = b"From MAILER-DAEMON  Mon Nov 23 08:00:05 2026\n".to_vec();
        with_from.extend_from_slice(dsn);
        fs::write(&piped, with_from).expect("write");

        let plain = Source::open(plain.to_str().expect("utf-8")).expect("a file");
        assert!(matches!(plain, Source::File(_)));
        assert_eq!(
            only_message(&plain, DEFAULT_MAX_MESSAGE_BYTES),
            Body::Bytes(dsn.to_vec())
        );
        let piped = Source::open(piped.to_str().expect("utf-8")).expect("a file");
        assert!(matches!(piped, Source::Mbox(_)));
        let Body::Bytes(bytes) = only_message(&piped, DEFAULT_MAX_MESSAGE_BYTES) else {
            panic!("too large")
        };
        let report = crate::bounces::report::parse(&bytes);
        assert!(
            matches!(
                report.form,
                crate::bounces::report::ReportForm::Delivery { standard: true, .. }
            ),
            "{report:?}"
        );
    }

    #[test]
    fn a_file_over_the_limit_is_too_large() {
        let file = tempfile::NamedTempFile::new().expect("file");
        fs::write(file.path(), vec![b'x'; 2000]).expect("write");
        let source = Source::open(file.path().to_str().expect("utf-8")).expect("a file");
        assert_eq!(only_message(&source, 1000), Body::TooLarge { at_least: 2000 });
    }

    #[test]
    fn a_folder_that_is_not_a_maildir_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_str().expect("utf-8");
        assert!(matches!(Source::open(path), Err(SourceError::NotAMaildir(_))));
    }

    #[test]
    fn the_seen_flag_is_added_once_in_order() {
        assert_eq!(with_flag("123.abc.host", 'S'), "123.abc.host:2,S");
        assert_eq!(with_flag("123.abc.host:2,RF", 'S'), "123.abc.host:2,FRS");
        assert_eq!(with_flag("123.abc.host:2,S", 'S'), "123.abc.host:2,S");
        assert_eq!(with_flag("123.abc.host", 'F'), "123.abc.host:2,F");
        assert_eq!(with_flag("123.abc.host:2,S", 'F'), "123.abc.host:2,FS");
    }
}
