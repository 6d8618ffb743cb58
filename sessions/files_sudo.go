package sessions

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Reads and writes as root, through sudo, for files the login cannot reach.
//
// The command is `sudo -S -p PROMPT -- sh -c SCRIPT sj ARGS` over an exec
// channel: PROMPT carries a fresh nonce and goes to stderr (-S), where we
// watch for it and answer with the password on stdin, as sudo jobs answer
// on the terminal; the password is never on a command line. Seen twice, the
// password was refused. Content is data, never an argument: a read streams
// the file on stdout; a write first puts the content in a private temporary
// file over SFTP (0600, the login's home), which the script installs as root
// (same folder temp file, owner/group/mode kept, sync, mv) and which is
// removed afterwards. The scripts follow the rules of detach_scripts.go (one
// line, no backslash, no `!`).

// Exit codes of the sudo scripts, for errors a caller can act on.
const (
	sudoExitIsDir     = 21
	sudoExitNoFolder  = 22
	sudoExitNotExist  = 23
	sudoExitNoFile    = 24 // if_sha256 on a missing file
	sudoExitNoSumTool = 25
	sudoExitConflict  = 26
	sudoExitWrite     = 27
	sudoExitOwner     = 28
	sudoExitRename    = 29
	sudoExitIrregular = 30 // a FIFO, a device, a socket: cat would block or never end
)

// sudoReadScript prints "NONCE size rawmode(hex) uid gid mtime" and then
// the file.
const sudoReadScript = `n=$1; p=$2; if [ -d "$p" ]; then exit 21; fi; if [ ! -e "$p" ]; then exit 23; fi; if [ ! -f "$p" ]; then exit 30; fi; s=$(stat -L -c "%s %f %u %g %Y" -- "$p") || exit 1; echo "$n $s"; exec cat -- "$p"`

// sudoWriteScript installs $2 (the content) at $3: args mode, if_sha256,
// append and make_dirs follow ("" for none). Like the write without sudo, it
// refuses a target that is not a regular file: an append or if_sha256 would
// read a FIFO and wait forever. It reports "NONCE ok SHA256"
// (or "-" without a sha256 tool), "NONCE stat ..." and, on a conflict,
// "NONCE conflict SHA256".
const sudoWriteScript = `n=$1; t=$2; d=$3; m=$4; want=$5; ap=$6; md=$7; ` +
	`if command -v sha256sum >/dev/null 2>&1; then c=sha256sum; elif command -v shasum >/dev/null 2>&1; then c="shasum -a 256"; else c=; fi; ` +
	`if [ -L "$d" ]; then d=$(readlink -f -- "$d") || exit 1; fi; ` +
	`if [ -d "$d" ]; then exit 21; fi; ` +
	`if [ -e "$d" ] && [ ! -f "$d" ]; then exit 30; fi; ` +
	`dir=$(dirname -- "$d"); if [ ! -d "$dir" ]; then if [ -n "$md" ]; then mkdir -p -- "$dir" || exit 1; else exit 22; fi; fi; ` +
	`if [ -e "$d" ]; then old=1; else old=; fi; ` +
	`if [ -n "$want" ]; then [ -n "$old" ] || exit 24; [ -n "$c" ] || exit 25; h=$($c < "$d") || exit 1; h=${h%% *}; [ "$h" = "$want" ] || { echo "$n conflict $h"; exit 26; }; fi; ` +
	`umask 077; new=$(mktemp -- "$dir/.$(basename -- "$d").sshjobs-XXXXXX") || exit 27; ` +
	`if [ -n "$ap" ] && [ -n "$old" ]; then cat -- "$d" "$t" > "$new" || { rm -f -- "$new"; exit 27; }; else cat -- "$t" > "$new" || { rm -f -- "$new"; exit 27; }; fi; ` +
	`if [ -n "$old" ]; then o=$(stat -L -c "%u:%g %a" -- "$d") && chown -- "${o%% *}" "$new" && chmod -- "${o#* }" "$new" || { rm -f -- "$new"; exit 28; }; fi; ` +
	`if [ -n "$m" ]; then chmod -- "$m" "$new" || { rm -f -- "$new"; exit 28; }; elif [ -z "$old" ]; then chmod 644 "$new"; fi; ` +
	`sync; mv -f -- "$new" "$d" || { rm -f -- "$new"; exit 29; }; ` +
	`if [ -n "$c" ]; then h=$($c < "$d"); echo "$n ok ${h%% *}"; else echo "$n ok -"; fi; ` +
	`s=$(stat -c "%s %f %u %g %Y" -- "$d") && echo "$n stat $d" && echo "$n info $s"`

// sudoRun runs script as root through sudo with args (after the nonce),
// streaming its stdout to out. It answers our sudo prompt with the password.
// It returns the script's exit status (0 when it ran and succeeded) and its
// stderr, without our prompt.
func (f *Files) sudoRun(ctx context.Context, script string, out io.Writer, args ...string) (nonce string, status int, stderr string, err error) {
	if f.sudoPass == nil {
		return "", 0, "", errors.New("sudo: no secrets are configured")
	}
	sess, err := f.c.openChannel(ctx)
	if err != nil {
		return "", 0, "", fmt.Errorf("open exec channel on %s: %w", f.key, err)
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return "", 0, "", err
	}
	nonce = newNonce()
	w := &sudoStderr{cut: newPromptCutter(sudoPrompt(nonce), ""), prompts: make(chan int, 4)}
	sess.Stdout, sess.Stderr = out, w
	cmd := "sudo -S -p " + shQuote(sudoPrompt(nonce)) + " -- " + execCommand(script, append([]string{nonce}, args...)...)
	if err := sess.Start(cmd); err != nil {
		return "", 0, "", fmt.Errorf("sudo on %s: %w", f.key, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	for {
		select {
		case err = <-done:
			stdin.Close()
			var ee *ssh.ExitError
			switch {
			case err == nil:
				return nonce, 0, w.String(), nil
			case errors.As(err, &ee):
				return nonce, ee.ExitStatus(), w.String(), nil
			}
			return "", 0, w.String(), fmt.Errorf("sudo on %s: %w", f.key, err)
		case n := <-w.prompts:
			if n > 1 {
				sess.Close()
				return "", 0, "", errors.New(msgSudoRefused)
			}
			pass, ok, err := f.sudoPass(ctx)
			if err != nil || !ok {
				sess.Close()
				if err == nil {
					err = errors.New(f.sudoNoPass)
				}
				return "", 0, "", err
			}
			if _, err := io.WriteString(stdin, pass+"\n"); err != nil {
				return "", 0, "", fmt.Errorf("sudo on %s: %w", f.key, err)
			}
		case <-ctx.Done():
			sess.Close()
			return "", 0, "", ctx.Err()
		}
	}
}

// sudoStderr cuts our prompt out of sudo's stderr and reports each one.
type sudoStderr struct {
	mu      sync.Mutex
	cut     *promptCutter
	buf     limitedBuffer
	prompts chan int
}

func (w *sudoStderr) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out, n := w.cut.Feed(p)
	w.buf.Write(out)
	for range n {
		select {
		case w.prompts <- w.cut.seen:
		default:
		}
	}
	return len(p), nil
}

func (w *sudoStderr) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(w.buf.String())
}

// sudoError turns a sudo script's exit status into the error a caller reads.
func (f *Files) sudoError(op, p string, status int, stderr string) error {
	var err error
	switch status {
	case sudoExitIsDir:
		err = fmt.Errorf("%w, not a file", ErrIsDir)
	case sudoExitNoFolder:
		err = &because{"no such folder (make_dirs: true creates it)", fs.ErrNotExist}
	case sudoExitNotExist:
		err = fs.ErrNotExist
	case sudoExitIrregular:
		err = errors.New("not a regular file")
	case sudoExitNoFile:
		err = fmt.Errorf("%w: if_sha256 is set but the file does not exist", ErrConflict)
	case sudoExitNoSumTool:
		err = errors.New("if_sha256 with sudo needs sha256sum or shasum on the host")
	case sudoExitWrite:
		err = fmt.Errorf("write failed (the disk or the quota may be full): %s", stderr)
	case sudoExitOwner:
		err = fmt.Errorf("cannot set the owner or mode: %s", stderr)
	case sudoExitRename:
		err = fmt.Errorf("rename into place failed: %s", stderr)
	default:
		err = fmt.Errorf("sudo exited %d: %s", status, stderr)
	}
	return f.fail(op, p, err)
}

// SudoRead is Read as root.
func (f *Files) SudoRead(ctx context.Context, p string, offset int64, max int) (*ReadResult, error) {
	abs, err := f.Abs(p)
	if err != nil {
		return nil, f.fail("read", p, err)
	}
	r := &sudoReadOut{w: &window{ctx: ctx, h: sha256.New(), lo: offset, hi: offset + int64(max)}}
	nonce, status, stderr, err := f.sudoRun(ctx, sudoReadScript, r, abs)
	if err != nil {
		return nil, f.fail("read", abs, err)
	}
	if status != 0 {
		return nil, f.sudoError("read", abs, status, stderr)
	}
	fields := strings.Fields(strings.TrimPrefix(string(r.head), nonce))
	if !strings.HasPrefix(string(r.head), nonce+" ") || len(fields) != 5 {
		return nil, f.fail("read", abs, fmt.Errorf("unexpected answer from the host: %q", r.head))
	}
	info, err := parseStat(abs, fields)
	if err != nil {
		return nil, f.fail("read", abs, err)
	}
	if info.Mode.IsDir() || !info.Mode.IsRegular() {
		return nil, f.fail("read", abs, fmt.Errorf("not a regular file"))
	}
	info.Size = r.w.pos
	return &ReadResult{FileInfo: info, SHA256: hex.EncodeToString(r.w.h.Sum(nil)), Data: r.w.buf, Offset: offset,
		Truncated: offset+int64(len(r.w.buf)) < r.w.pos}, nil
}

// sudoReadOut splits the read script's stdout: its header line, then the
// file through the window.
type sudoReadOut struct {
	head   []byte
	inBody bool
	w      *window
}

func (r *sudoReadOut) Write(p []byte) (int, error) {
	n := len(p)
	if !r.inBody {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(r.head)+len(p) > 4096 {
				return 0, errors.New("header too long")
			}
			r.head = append(r.head, p...)
			return n, nil
		}
		r.head = append(r.head, p[:i]...)
		r.inBody, p = true, p[i+1:]
	}
	if _, err := r.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// parseStat reads "size rawmode(hex) uid gid mtime" as stat -c prints it.
func parseStat(p string, fields []string) (FileInfo, error) {
	var v [5]int64
	if len(fields) != len(v) {
		// The remote prints this line: never trust its shape.
		return FileInfo{}, fmt.Errorf("unexpected stat output %q", fields)
	}
	for i, s := range fields {
		base := 10
		if i == 1 {
			base = 16
		}
		n, err := strconv.ParseInt(s, base, 64)
		if err != nil {
			return FileInfo{}, fmt.Errorf("unexpected stat output %q", fields)
		}
		v[i] = n
	}
	return FileInfo{Path: p, Size: v[0], Mode: unixMode(uint32(v[1])), UID: int(v[2]), GID: int(v[3]),
		ModTime: time.Unix(v[4], 0)}, nil
}

// unixMode converts st_mode bits to an fs.FileMode.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o100000:
	default:
		mode |= fs.ModeIrregular
	}
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// SudoWrite is Write as root: the content goes to a private temporary file
// over SFTP, which the write script installs.
func (f *Files) SudoWrite(ctx context.Context, req WriteRequest) (*WriteResult, error) {
	abs, err := f.Abs(req.Path)
	if err != nil {
		return nil, f.fail("write", req.Path, err)
	}
	unlock := f.pool.lockPath(f.key, abs)
	defer unlock()
	home, err := f.Abs("~")
	if err != nil {
		return nil, f.fail("write", abs, err)
	}
	var b [8]byte
	rand.Read(b[:])
	tmp := path.Join(home, ".sshjobs-sudo-"+hex.EncodeToString(b[:])+".tmp")
	file, err := f.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return nil, f.fail("write", abs, fmt.Errorf("create a private temporary file %s: %w", tmp, err))
	}
	defer f.sftp.Remove(tmp)
	if err := f.sftp.Chmod(tmp, 0o600); err != nil {
		file.Close()
		return nil, f.fail("write", abs, err)
	}
	_, err = file.ReadFromWithConcurrency(&ctxReader{ctx: ctx, r: bytes.NewReader(req.Data)}, 0)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, f.fail("write", abs, fmt.Errorf("stage the content: %w", writeErr(err)))
	}
	mode := ""
	if req.Mode != nil {
		mode = fmt.Sprintf("%o", toChmod(*req.Mode))
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return ""
	}
	var out limitedBuffer
	nonce, status, stderr, err := f.sudoRun(ctx, sudoWriteScript, &out, tmp, abs, mode,
		strings.ToLower(req.IfSHA256), flag(req.Append), flag(req.MakeDirs))
	if err != nil {
		return nil, f.fail("write", abs, err)
	}
	lines := reportLines(nonce, out.String())
	if status == sudoExitConflict && len(lines) > 0 && len(lines[0]) == 2 {
		return nil, f.fail("write", abs, fmt.Errorf("%w: its sha256 is %s, not %s; nothing was written: read it again", ErrConflict, lines[0][1], strings.ToLower(req.IfSHA256)))
	}
	if status != 0 {
		return nil, f.sudoError("write", abs, status, stderr)
	}
	res := &WriteResult{}
	for _, l := range lines {
		switch {
		case l[0] == "ok" && len(l) == 2 && l[1] != "-":
			res.SHA256 = l[1]
		case l[0] == "stat" && len(l) == 2:
			res.Path = l[1]
		case l[0] == "info" && len(l) == 2:
			info, err := parseStat(res.Path, strings.Fields(l[1]))
			if err != nil {
				return nil, f.fail("write", abs, err)
			}
			res.FileInfo = info
		}
	}
	if res.SHA256 == "" && !req.Append {
		s := sha256.Sum256(req.Data)
		res.SHA256 = hex.EncodeToString(s[:])
	}
	return res, nil
}

// toChmod renders m's permission bits as chmod takes them.
func toChmod(m fs.FileMode) uint32 {
	p := uint32(m & 0o7777)
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}
