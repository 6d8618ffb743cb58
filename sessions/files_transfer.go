package sessions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Uploads and downloads: streamed through the SFTP client (memory bounded by
// the requests in flight), installed atomically like Write, and verified:
// the sha256 of what was sent is compared with the remote file's, computed
// on the host by sha256sum or shasum where there is one, else read back
// over SFTP.

// LocalCheck confines a local path: it returns the path with symlinks
// resolved (for a path that does not exist yet, its nearest existing
// folder's) if that lies inside the allowed folders, else an error. The
// caller supplies it (MCP roots, --allow-local); it is applied to every
// local file a transfer touches, so a symlink inside a tree cannot lead out.
type LocalCheck func(p string) (string, error)

// TransferRequest is an upload or a download.
type TransferRequest struct {
	Local, Remote string
	Recursive     bool
	MakeDirs      bool
	Mode          *fs.FileMode // files' mode; nil: keep the target's, else the source's
	Check         LocalCheck
}

// TransferFile is one file moved.
type TransferFile struct {
	Local, Remote string
	Size          int64
	SHA256        string
}

// TransferResult is what a transfer moved and how it was verified.
type TransferResult struct {
	Files    []TransferFile
	Bytes    int64
	Verified string   // how the remote side was hashed: sha256sum, shasum, or sftp
	Skipped  []string // local or remote entries that are not files or folders (symlinked folders, devices)
}

// Upload copies a local file (or, with Recursive, a folder) to the remote
// path. A remote folder that exists receives the file under its own name.
func (f *Files) Upload(ctx context.Context, req TransferRequest) (*TransferResult, error) {
	local, err := req.Check(req.Local)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(local)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	remote, err := f.Abs(req.Remote)
	if err != nil {
		return nil, f.fail("upload", req.Remote, err)
	}
	res := &TransferResult{}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		// A FIFO would block the copy for good, a device never end.
		return nil, fmt.Errorf("upload %s: not a regular file (%s)", local, typeOf(fi))
	}
	if !fi.IsDir() {
		if rfi, err := f.sftp.Stat(remote); err == nil && rfi.IsDir() {
			remote = path.Join(remote, filepath.Base(local))
		}
		return res, f.uploadFile(ctx, req, local, remote, fi, res)
	}
	if !req.Recursive {
		return nil, fmt.Errorf("upload %s: %w: set recursive: true to copy a folder", local, ErrIsDir)
	}
	// The folder itself is created, as cp -r does; its parents only with
	// make_dirs.
	if err := f.ensureDir(path.Dir(remote), req.MakeDirs); err != nil {
		return nil, err
	}
	if err := f.ensureDir(remote, true); err != nil {
		return nil, err
	}
	err = filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(local, p)
		dst := path.Join(remote, filepath.ToSlash(rel))
		switch {
		case p == local:
			return nil
		case d.IsDir():
			return f.ensureDir(dst, true)
		case d.Type()&fs.ModeSymlink != 0:
			// Followed only to a file inside the allowed folders; a
			// symlinked folder is not descended into.
			real, err := req.Check(p)
			if err != nil {
				return err
			}
			tfi, err := os.Stat(real)
			if err != nil || !tfi.Mode().IsRegular() {
				res.Skipped = append(res.Skipped, p)
				return nil
			}
			return f.uploadFile(ctx, req, real, dst, tfi, res)
		case !d.Type().IsRegular():
			res.Skipped = append(res.Skipped, p)
			return nil
		}
		lfi, err := d.Info()
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		return f.uploadFile(ctx, req, p, dst, lfi, res)
	})
	return res, err
}

// uploadFile installs one local file at remote and verifies it.
func (f *Files) uploadFile(ctx context.Context, req TransferRequest, local, remote string, lfi fs.FileInfo, res *TransferResult) error {
	if _, err := req.Check(local); err != nil {
		return err
	}
	src, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer src.Close()
	unlock := f.pool.lockPath(f.key, remote)
	defer unlock()
	target, old, err := f.resolveLinks(remote)
	if err != nil {
		return err
	}
	if old != nil && !old.Mode().IsRegular() {
		return f.fail("upload", target, fmt.Errorf("not a regular file (%s)", typeOf(old)))
	}
	if old == nil {
		if err := f.ensureDir(path.Dir(target), req.MakeDirs); err != nil {
			return err
		}
	}
	sum, n, err := f.install(ctx, installOpts{op: "upload", target: target, old: old, src: src,
		mode: req.Mode, newMode: lfi.Mode().Perm(),
		verify: func(tmp, sum string) error {
			got, how, err := f.remoteSum(ctx, tmp, lfi.Size())
			if err != nil {
				return err
			}
			res.Verified = how
			if got != sum {
				return fmt.Errorf("verify: sent sha256 %s, the host has %s (by %s); nothing was written", sum, got, how)
			}
			return nil
		}})
	if err != nil {
		return err
	}
	res.Files = append(res.Files, TransferFile{Local: local, Remote: target, Size: n, SHA256: sum})
	res.Bytes += n
	return nil
}

// Download copies a remote file (or, with Recursive, a folder) to the local
// path. A local folder that exists receives the file under its own name.
func (f *Files) Download(ctx context.Context, req TransferRequest) (*TransferResult, error) {
	remote, err := f.Abs(req.Remote)
	if err != nil {
		return nil, f.fail("download", req.Remote, err)
	}
	rfi, err := f.sftp.Stat(remote)
	if err != nil {
		return nil, f.fail("download", remote, err)
	}
	local, err := req.Check(req.Local)
	if err != nil {
		return nil, err
	}
	res := &TransferResult{}
	if !rfi.IsDir() && !rfi.Mode().IsRegular() {
		// A FIFO would block the copy for good, a device never end.
		return nil, f.fail("download", remote, fmt.Errorf("not a regular file (%s)", typeOf(rfi)))
	}
	if !rfi.IsDir() {
		if lfi, err := os.Stat(local); err == nil && lfi.IsDir() {
			local = filepath.Join(local, path.Base(remote))
		}
		return res, f.downloadFile(ctx, req, remote, local, rfi, res)
	}
	if !req.Recursive {
		return nil, f.fail("download", remote, fmt.Errorf("%w: set recursive: true to copy a folder", ErrIsDir))
	}
	// The folder itself is created, as cp -r does; its parents only with
	// make_dirs.
	if err := localDir(filepath.Dir(local), req.MakeDirs); err != nil {
		return nil, err
	}
	req.MakeDirs = true
	return res, f.downloadDir(ctx, req, remote, local, res)
}

// downloadDir copies the remote folder's tree into the local folder.
func (f *Files) downloadDir(ctx context.Context, req TransferRequest, remote, local string, res *TransferResult) error {
	if err := localDir(local, req.MakeDirs); err != nil {
		return err
	}
	infos, err := f.sftp.ReadDirContext(ctx, remote)
	if err != nil {
		return f.fail("download", remote, err)
	}
	for _, fi := range infos {
		name := fi.Name()
		if name == "." || name == ".." {
			continue
		}
		if strings.ContainsAny(name, "/\x00") {
			// Only a broken or hostile server sends such a name; it must not
			// lead the local path anywhere.
			return f.fail("download", remote, fmt.Errorf("the server listed an entry named %q", name))
		}
		src, dst := path.Join(remote, name), filepath.Join(local, name)
		switch {
		case fi.IsDir():
			if _, err := req.Check(dst); err != nil {
				return err
			}
			if err := f.downloadDir(ctx, TransferRequest{Check: req.Check, Mode: req.Mode, MakeDirs: true}, src, dst, res); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := f.downloadFile(ctx, req, src, dst, fi, res); err != nil {
				return err
			}
		default:
			res.Skipped = append(res.Skipped, src)
		}
	}
	return nil
}

// localDir checks that dir is a local folder, creating it with makeDirs.
func localDir(dir string, makeDirs bool) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("download: %s: %w", dir, ErrNotDir)
	case !errors.Is(err, fs.ErrNotExist) || !makeDirs:
		return fmt.Errorf("download: %w (make_dirs: true creates missing folders)", err)
	}
	return os.MkdirAll(dir, 0o755)
}

// downloadFile writes one remote file to local atomically (a temporary
// file in the same folder, fsync, rename) and verifies it.
func (f *Files) downloadFile(ctx context.Context, req TransferRequest, remote, local string, rfi fs.FileInfo, res *TransferResult) error {
	local, err := req.Check(local) // symlinks resolved: the file replaced is the real one
	if err != nil {
		return err
	}
	if err := localDir(filepath.Dir(local), req.MakeDirs); err != nil {
		return err
	}
	// The remote's mode, less write for group and others: a server must not
	// make a file here writable by everyone.
	mode := rfi.Mode().Perm() &^ 0o022
	if lfi, err := os.Stat(local); err == nil {
		if !lfi.Mode().IsRegular() {
			return fmt.Errorf("download to %s: not a regular file", local)
		}
		mode = lfi.Mode().Perm()
	}
	if req.Mode != nil {
		mode = *req.Mode
	}
	src, err := f.sftp.Open(remote)
	if err != nil {
		return f.fail("download", remote, err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(local), "."+filepath.Base(local)+".sshjobs-*.tmp")
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := src.WriteTo(io.MultiWriter(&ctxWriter{ctx: ctx, w: tmp}, h))
	if err != nil {
		return f.fail("download", remote, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("download to %s: %w", local, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("download to %s: %w", local, err)
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return fmt.Errorf("download to %s: %w", local, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	got, how, err := f.remoteSum(ctx, remote, n)
	if err != nil {
		return err
	}
	res.Verified = how
	if got != sum {
		return f.fail("download", remote, fmt.Errorf("verify: received sha256 %s, the host has %s (by %s): the file changed during the copy? %s was not written", sum, got, how, local))
	}
	if err := os.Rename(tmp.Name(), local); err != nil {
		return fmt.Errorf("download to %s: %w", local, err)
	}
	done = true
	res.Files = append(res.Files, TransferFile{Local: local, Remote: remote, Size: n, SHA256: sum})
	res.Bytes += n
	return nil
}

// sumScript prints the sha256 of each file argument with sha256sum or
// shasum (reading stdin, so that no file name has to be parsed back), or
// "none" when the host has neither. One line, no backslash, no `!`: see
// detach_scripts.go.
const sumScript = `n=$1; shift; if command -v sha256sum >/dev/null 2>&1; then c=sha256sum; elif command -v shasum >/dev/null 2>&1; then c="shasum -a 256"; else echo "$n none"; exit 0; fi; for f do if h=$($c < "$f"); then echo "$n ${c%% *} ${h%% *}"; else echo "$n failed"; fi; done`

// remoteSum returns the sha256 of the remote file p as the host computes
// it, and how: by sha256sum or shasum, else by reading it back over SFTP.
func (f *Files) remoteSum(ctx context.Context, p string, size int64) (sum, how string, err error) {
	if !f.c.noSumTool.Load() {
		// Hashing takes time with the size: allow 20 MB/s, a slow disk's.
		limit := execTimeout + time.Duration(size/20e6)*time.Second
		lines, err := execReportWithin(ctx, f.c, limit, sumScript, p)
		if err != nil {
			return "", "", f.fail("verify", p, err)
		}
		switch {
		case len(lines) == 1 && lines[0][0] == "none":
			f.c.noSumTool.Store(true)
		case len(lines) == 1 && len(lines[0]) == 2 && len(lines[0][1]) == 64:
			return strings.ToLower(lines[0][1]), lines[0][0], nil
		default:
			return "", "", f.fail("verify", p, fmt.Errorf("the host's sha256sum failed: %q", lines))
		}
	}
	sum, err = f.hashFile(ctx, p)
	return sum, "sftp", err
}
