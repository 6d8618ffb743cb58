package sessions

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
)

// Limits of the file operations (docs/TOOLS.md, "Files").
const (
	DefaultReadBytes = 256 << 10
	MaxReadBytes     = 2 << 20
	MaxWriteBytes    = 2 << 20
	DefaultListMax   = 1000
	MaxListMax       = 10000
	// maxLinkHops bounds following a chain of symlinks, as the kernel's
	// ELOOP does, so that a loop cannot hang a write.
	maxLinkHops = 40
	pingWait    = 5 * time.Second
)

// Files is file operations on one destination, over the SFTP client of its
// pooled connection (Executor.WithFiles). Paths may start with `~` (the
// login's home); a relative path is taken from the home, as sftp does.
type Files struct {
	pool *Pool
	c    *conn  // for exec channels (remote sha256sum)
	key  string // the destination's key, for errors
	sftp *sftp.Client
	home string // cached by abs
	// sudoPass is the password for sudo (SudoRead, SudoWrite), looked up
	// only when sudo asks; sudoNoPass is the error when it knows none.
	sudoPass   func(ctx context.Context) (string, bool, error)
	sudoNoPass string
}

// FileError is a failed file operation: what, where, and the cause, with
// the causes a caller can act on (fs.ErrNotExist, fs.ErrPermission,
// ErrIsDir, ErrNotDir, ErrConflict) kept for errors.Is.
type FileError struct {
	Op, Host, Path string
	Err            error
}

func (e *FileError) Error() string {
	msg := e.Err.Error()
	switch e.Err {
	case fs.ErrNotExist:
		msg = "no such file or folder"
	case fs.ErrPermission:
		msg = "permission denied"
	}
	return fmt.Sprintf("%s %s on %s: %s", e.Op, e.Path, e.Host, msg)
}

// because is an error with its own text that still counts as cause for
// errors.Is.
type because struct {
	msg   string
	cause error
}

func (b *because) Error() string { return b.msg }
func (b *because) Unwrap() error { return b.cause }

func (e *FileError) Unwrap() error { return e.Err }

// Causes of FileError besides fs.ErrNotExist and fs.ErrPermission.
var (
	ErrIsDir    = errors.New("is a folder")
	ErrNotDir   = errors.New("is not a folder")
	ErrConflict = errors.New("the file changed")
)

func (f *Files) fail(op, p string, err error) error {
	var fe *FileError
	if errors.As(err, &fe) {
		return err
	}
	// The op and path are said once, by FileError.
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &FileError{Op: op, Host: f.key, Path: p, Err: err}
}

// Abs expands p: `~` and `~/...` are the login's home, a relative path is
// taken from the home, and the result is cleaned. `~user` is refused: SFTP
// cannot look another user's home up.
func (f *Files) Abs(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("path is empty")
	case strings.ContainsRune(p, 0):
		return "", errors.New("path contains a NUL byte")
	case strings.HasPrefix(p, "~") && p != "~" && !strings.HasPrefix(p, "~/"):
		return "", fmt.Errorf("path %q: ~user is not supported; write the folder out", p)
	case path.IsAbs(p):
		return path.Clean(p), nil
	}
	if f.home == "" {
		home, err := f.sftp.Getwd()
		if err != nil {
			return "", fmt.Errorf("find the home folder on %s: %w", f.key, err)
		}
		f.home = home
	}
	p = strings.TrimPrefix(strings.TrimPrefix(p, "~"), "/")
	return path.Join(f.home, p), nil
}

// FileInfo is what a file operation reports about a file.
type FileInfo struct {
	Path    string // absolute
	Size    int64
	Mode    fs.FileMode
	ModTime time.Time
	UID     int
	GID     int
}

func infoOf(p string, fi fs.FileInfo) FileInfo {
	i := FileInfo{Path: p, Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime()}
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		i.UID, i.GID = int(st.UID), int(st.GID)
	}
	return i
}

// rawMode is the permission bits of fi as chmod takes them (with setuid,
// setgid and sticky), so that a rewritten file keeps all of them.
func rawMode(fi fs.FileInfo) fs.FileMode {
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		return fs.FileMode(st.Mode & 0o7777)
	}
	return fi.Mode().Perm()
}

// ReadResult is a slice of a file and what is known of the whole file.
type ReadResult struct {
	FileInfo
	SHA256    string // of the whole file, as read
	Data      []byte
	Offset    int64 // where Data starts
	Truncated bool  // the file goes on past Data
}

// Read returns up to max bytes of the file at p from offset, and the
// sha256 of the whole file: the file is read once, end to end, and only
// the slice is kept in memory.
func (f *Files) Read(ctx context.Context, p string, offset int64, max int) (*ReadResult, error) {
	abs, err := f.Abs(p)
	if err != nil {
		return nil, f.fail("read", p, err)
	}
	fi, err := f.regular("read", abs)
	if err != nil {
		return nil, err
	}
	file, err := f.sftp.Open(abs)
	if err != nil {
		return nil, f.fail("read", abs, err)
	}
	defer file.Close()
	w := &window{ctx: ctx, h: sha256.New(), lo: offset, hi: offset + int64(max)}
	n, err := file.WriteTo(w)
	if err != nil {
		return nil, f.fail("read", abs, err)
	}
	res := &ReadResult{FileInfo: infoOf(abs, fi), SHA256: hex.EncodeToString(w.h.Sum(nil)), Data: w.buf, Offset: offset}
	res.Size = n // what was read: the file may have grown since its stat
	res.Truncated = offset+int64(len(w.buf)) < n
	return res, nil
}

// window is a writer that hashes everything and keeps the bytes in
// [lo, hi); it fails once ctx ends, which stops a long read.
type window struct {
	ctx    context.Context
	h      hash.Hash
	lo, hi int64
	pos    int64
	buf    []byte
}

func (w *window) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	w.h.Write(p)
	start, end := max(w.lo, w.pos), min(w.hi, w.pos+int64(len(p)))
	if start < end {
		w.buf = append(w.buf, p[start-w.pos:end-w.pos]...)
	}
	w.pos += int64(len(p))
	return len(p), nil
}

// regular stats abs (following symlinks) and refuses anything but a
// regular file.
func (f *Files) regular(op, abs string) (fs.FileInfo, error) {
	fi, err := f.sftp.Stat(abs)
	switch {
	case err != nil:
		return nil, f.fail(op, abs, err)
	case fi.IsDir():
		return nil, f.fail(op, abs, fmt.Errorf("%w, not a file: list it with ssh_list_dir", ErrIsDir))
	case !fi.Mode().IsRegular():
		return nil, f.fail(op, abs, fmt.Errorf("not a regular file (%s)", typeOf(fi)))
	}
	return fi, nil
}

// WriteRequest is what Write writes.
type WriteRequest struct {
	Path     string
	Data     []byte
	Append   bool         // add Data to the end of the current content
	MakeDirs bool         // create missing parent folders
	Mode     *fs.FileMode // nil: keep an existing file's mode; 0644 for a new one
	IfSHA256 string       // refuse unless the current content has this sha256
}

// WriteResult is the file as written.
type WriteResult struct {
	FileInfo
	SHA256  string
	Created bool // there was no file before
}

// Write replaces the file's content atomically: the new content goes to a
// temporary file in the same folder, is synced, given the old file's mode,
// owner and group, and renamed over the file, so that a reader sees the old
// or the new content, never a part. A symlink is written through (its target
// is replaced). Writes to one path by this process run one at a time. On any
// failure the temporary file is removed and the file is untouched.
func (f *Files) Write(ctx context.Context, req WriteRequest) (*WriteResult, error) {
	abs, err := f.Abs(req.Path)
	if err != nil {
		return nil, f.fail("write", req.Path, err)
	}
	unlock := f.pool.lockPath(f.key, abs)
	defer unlock()
	target, old, err := f.resolveLinks(abs)
	if err != nil {
		return nil, err
	}
	if old != nil {
		switch {
		case old.IsDir():
			return nil, f.fail("write", target, fmt.Errorf("%w, not a file", ErrIsDir))
		case !old.Mode().IsRegular():
			return nil, f.fail("write", target, fmt.Errorf("not a regular file (%s)", typeOf(old)))
		}
	}
	if req.IfSHA256 != "" {
		if old == nil {
			return nil, f.fail("write", target, fmt.Errorf("%w: if_sha256 is set but the file does not exist", ErrConflict))
		}
		cur, err := f.hashFile(ctx, target)
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(cur, req.IfSHA256) {
			return nil, f.fail("write", target, fmt.Errorf("%w: its sha256 is %s, not %s; nothing was written: read it again", ErrConflict, cur, strings.ToLower(req.IfSHA256)))
		}
	}
	dir := path.Dir(target)
	if old == nil {
		if err := f.ensureDir(dir, req.MakeDirs); err != nil {
			return nil, err
		}
	}

	sum, _, err := f.install(ctx, installOpts{op: "write", target: target, old: old, prefix: req.Append,
		src: bytes.NewReader(req.Data), mode: req.Mode, newMode: 0o644})
	if err != nil {
		return nil, err
	}
	fi, err := f.sftp.Stat(target)
	if err != nil {
		return nil, f.fail("write", target, err)
	}
	return &WriteResult{FileInfo: infoOf(target, fi), SHA256: sum, Created: old == nil}, nil
}

// installOpts says what install writes where.
type installOpts struct {
	op     string
	target string      // the path replaced (symlinks resolved)
	old    fs.FileInfo // target's Lstat; nil when there is none
	prefix bool        // old's content first (append)
	src    io.Reader
	// mode is the new file's mode; nil keeps old's, or newMode for a new file.
	mode    *fs.FileMode
	newMode fs.FileMode
	// verify, if set, checks the temporary file (its path and the sha256 of
	// what was sent) before it replaces target.
	verify func(tmp, sum string) error
}

// install streams o.src (after old's content with prefix) to a temporary
// file next to o.target, and renames it into place (finishTemp). Memory is
// bounded by the SFTP requests in flight. On any failure the temporary
// file is removed and target is untouched.
func (f *Files) install(ctx context.Context, o installOpts) (sum string, n int64, err error) {
	tmp, file, err := f.createTemp(o.op, path.Dir(o.target), path.Base(o.target))
	if err != nil {
		return "", 0, err
	}
	done := false
	defer func() {
		if !done {
			file.Close()
			f.sftp.Remove(tmp)
		}
	}()
	h := sha256.New()
	if o.prefix && o.old != nil {
		src, err := f.sftp.Open(o.target)
		if err != nil {
			return "", 0, f.fail(o.op, o.target, err)
		}
		n, err = src.WriteTo(io.MultiWriter(&ctxWriter{ctx: ctx, w: file}, h))
		src.Close()
		if err != nil {
			return "", 0, f.fail(o.op, o.target, fmt.Errorf("copy the current content: %w", writeErr(err)))
		}
	}
	m, err := file.ReadFromWithConcurrency(io.TeeReader(&ctxReader{ctx: ctx, r: o.src}, h), 0)
	n += m
	if err != nil {
		return "", 0, f.fail(o.op, o.target, writeErr(err))
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if err := f.finishTemp(file, tmp, o, sum); err != nil {
		return "", 0, err
	}
	done = true
	return sum, n, nil
}

// finishTemp syncs and closes the temporary file, gives it the mode (mode,
// else the old file's, else 0644) and the old file's owner and group, and
// renames it over target.
func (f *Files) finishTemp(file *sftp.File, tmp string, o installOpts, sum string) error {
	target, old, mode := o.target, o.old, o.mode
	if _, ok := f.sftp.HasExtension("fsync@openssh.com"); ok {
		if err := file.Sync(); err != nil {
			return f.fail(o.op, target, fmt.Errorf("fsync: %w", writeErr(err)))
		}
	}
	if err := file.Close(); err != nil {
		return f.fail(o.op, target, writeErr(err))
	}
	m := o.newMode
	switch {
	case mode != nil:
		m = *mode
	case old != nil:
		m = rawMode(old)
	}
	if old != nil {
		was := infoOf(target, old)
		tfi, err := f.sftp.Stat(tmp)
		if err != nil {
			return f.fail(o.op, target, err)
		}
		if t := infoOf(tmp, tfi); t.UID != was.UID || t.GID != was.GID {
			if err := f.sftp.Chown(tmp, was.UID, was.GID); err != nil {
				return f.fail(o.op, target, fmt.Errorf("cannot keep its owner and group (uid %d, gid %d): %w; nothing was written", was.UID, was.GID, err))
			}
		}
	}
	// After chown, which clears setuid and setgid bits.
	if err := f.sftp.Chmod(tmp, m); err != nil {
		return f.fail(o.op, target, fmt.Errorf("chmod %o: %w", m, err))
	}
	if o.verify != nil {
		if err := o.verify(tmp, sum); err != nil {
			return f.fail(o.op, target, err)
		}
	}
	if _, ok := f.sftp.HasExtension("posix-rename@openssh.com"); ok {
		if err := f.sftp.PosixRename(tmp, target); err != nil {
			return f.fail(o.op, target, fmt.Errorf("rename into place: %w", err))
		}
		return nil
	}
	// Plain SFTP rename refuses to replace a file: remove it first (not
	// atomic; only servers without the OpenSSH extension get here).
	if old != nil {
		if err := f.sftp.Remove(target); err != nil {
			return f.fail(o.op, target, err)
		}
	}
	if err := f.sftp.Rename(tmp, target); err != nil {
		return f.fail(o.op, target, fmt.Errorf("rename into place: %w", err))
	}
	return nil
}

// createTemp creates a new file next to name in dir, for a write to
// rename into place.
func (f *Files) createTemp(op, dir, name string) (string, *sftp.File, error) {
	for range 3 {
		var b [6]byte
		rand.Read(b[:])
		tmp := path.Join(dir, "."+name+".sshjobs-"+hex.EncodeToString(b[:])+".tmp")
		file, err := f.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err == nil {
			return tmp, file, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			var se *sftp.StatusError
			if !errors.As(err, &se) || se.FxCode() != sftp.ErrSSHFxFailure {
				return "", nil, f.fail(op, path.Join(dir, name), fmt.Errorf("create a temporary file in %s: %w", dir, err))
			}
		}
	}
	return "", nil, f.fail(op, path.Join(dir, name), fmt.Errorf("could not create a temporary file in %s", dir))
}

// resolveLinks follows symlinks from abs to the path a write replaces, and
// returns it with its Lstat (nil when it does not exist).
func (f *Files) resolveLinks(abs string) (string, fs.FileInfo, error) {
	p := abs
	for range maxLinkHops {
		fi, err := f.sftp.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil, nil
		}
		if err != nil {
			return "", nil, f.fail("write", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, fi, nil
		}
		link, err := f.sftp.ReadLink(p)
		if err != nil {
			return "", nil, f.fail("write", p, fmt.Errorf("read symlink: %w", err))
		}
		if !path.IsAbs(link) {
			link = path.Join(path.Dir(p), link)
		}
		p = path.Clean(link)
	}
	return "", nil, f.fail("write", abs, errors.New("too many levels of symbolic links"))
}

// ensureDir checks that dir is a folder, creating it (and its parents)
// with makeDirs.
func (f *Files) ensureDir(dir string, makeDirs bool) error {
	fi, err := f.sftp.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return f.fail("write", dir, ErrNotDir)
	case !errors.Is(err, fs.ErrNotExist):
		return f.fail("write", dir, err)
	case !makeDirs:
		return f.fail("write", dir, &because{"no such folder (make_dirs: true creates it)", fs.ErrNotExist})
	}
	if err := f.sftp.MkdirAll(dir); err != nil {
		return f.fail("mkdir", dir, err)
	}
	return nil
}

// hashFile returns the sha256 of the file at abs, read over SFTP.
func (f *Files) hashFile(ctx context.Context, abs string) (string, error) {
	file, err := f.sftp.Open(abs)
	if err != nil {
		return "", f.fail("read", abs, err)
	}
	defer file.Close()
	h := sha256.New()
	if _, err := file.WriteTo(&ctxWriter{ctx: ctx, w: h}); err != nil {
		return "", f.fail("read", abs, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeErr says what a server's generic failure during a write most likely
// is: OpenSSH's sftp-server reports ENOSPC and EDQUOT as plain "failure".
func writeErr(err error) error {
	var se *sftp.StatusError
	if errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxFailure {
		return fmt.Errorf("%w (the disk or the quota may be full)", err)
	}
	return err
}

// ctxReader fails once ctx ends, which stops a long copy.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ctxWriter fails once ctx ends, which stops a long copy.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Entry is one entry of a folder.
type Entry struct {
	Name    string
	Type    string // file, dir, symlink or other
	Size    int64
	Mode    fs.FileMode
	ModTime time.Time
	Target  string // a symlink's target, as stored
}

// ListResult is a folder's entries, sorted by name.
type ListResult struct {
	Path      string
	Entries   []Entry
	Total     int  // entries that matched (dot files only with all)
	Truncated bool // Entries holds the first max of Total
}

// List lists the folder at p: without all, names starting with "." are
// left out; at most max entries are returned.
func (f *Files) List(ctx context.Context, p string, all bool, max int) (*ListResult, error) {
	abs, err := f.Abs(p)
	if err != nil {
		return nil, f.fail("list", p, err)
	}
	fi, err := f.sftp.Stat(abs)
	if err != nil {
		return nil, f.fail("list", abs, err)
	}
	if !fi.IsDir() {
		return nil, f.fail("list", abs, fmt.Errorf("%w: read it with ssh_read_file", ErrNotDir))
	}
	infos, err := f.sftp.ReadDirContext(ctx, abs)
	if err != nil {
		return nil, f.fail("list", abs, err)
	}
	infos = slices.DeleteFunc(infos, func(fi fs.FileInfo) bool {
		return fi.Name() == "." || fi.Name() == ".." || !all && strings.HasPrefix(fi.Name(), ".")
	})
	slices.SortFunc(infos, func(a, b fs.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
	res := &ListResult{Path: abs, Total: len(infos)}
	if len(infos) > max {
		infos, res.Truncated = infos[:max], true
	}
	for _, fi := range infos {
		e := Entry{Name: fi.Name(), Type: typeOf(fi), Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime()}
		if e.Type == "symlink" {
			// Best effort: a link that cannot be read is still listed.
			e.Target, _ = f.sftp.ReadLink(path.Join(abs, fi.Name()))
		}
		res.Entries = append(res.Entries, e)
	}
	return res, nil
}

func typeOf(fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "other"
}

// pathLocks serialises writes to one path of one destination within this
// process.
type pathLocks struct {
	mu sync.Mutex
	m  map[string]*pathLock
}

type pathLock struct {
	mu   sync.Mutex
	refs int
}

// lockPath locks (key, p) and returns its unlock.
func (p *Pool) lockPath(key, abs string) func() {
	l := &p.paths
	k := key + "\x00" + abs
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*pathLock{}
	}
	e := l.m[k]
	if e == nil {
		e = &pathLock{}
		l.m[k] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, k)
		}
		l.mu.Unlock()
	}
}
