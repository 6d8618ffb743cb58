package sessions

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// withFiles runs fn with file operations on srv, resolved as the engine
// resolves a job.
func withFiles(t *testing.T, p *Pool, srv *sshtest.Server, fn func(f *Files) error) error {
	t.Helper()
	e := executor(p)
	d, err := e.ResolveDestination(context.Background(), srv.Alias)
	if err != nil {
		t.Fatal(err)
	}
	j := &jobs.Job{ID: "file-job", Host: d.Key, Target: srv.Alias, Destination: d.Spec}
	return e.WithFiles(context.Background(), j, fn)
}

func mustFiles(t *testing.T, p *Pool, srv *sshtest.Server, fn func(f *Files) error) {
	t.Helper()
	if err := withFiles(t, p, srv, fn); err != nil {
		t.Fatal(err)
	}
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestFileRoundTrip(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		bin := make([]byte, 70000)
		rand.Read(bin)
		bin[10] = 0
		for name, data := range map[string][]byte{"text.txt": []byte("héllo\nworld\n"), "bin": bin, "empty": {}} {
			mustFiles(t, p, srv, func(f *Files) error {
				w, err := f.Write(context.Background(), WriteRequest{Path: "~/d/" + name, Data: data, MakeDirs: true})
				if err != nil {
					return err
				}
				if !w.Created || w.SHA256 != sum(data) || w.Size != int64(len(data)) || w.Mode.Perm() != 0o644 {
					t.Errorf("%s: write answered %+v", name, w)
				}
				r, err := f.Read(context.Background(), "~/d/"+name, 0, MaxReadBytes)
				if err != nil {
					return err
				}
				if !bytes.Equal(r.Data, data) || r.SHA256 != sum(data) || r.Truncated || r.Path != filepath.Join(srv.Home, "d", name) {
					t.Errorf("%s: read back %d bytes, sha %s, truncated %v, path %s", name, len(r.Data), r.SHA256, r.Truncated, r.Path)
				}
				return nil
			})
			got, err := os.ReadFile(filepath.Join(srv.Home, "d", name))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s on disk: %v", name, err)
			}
		}
		// Append, to an existing file and to a new one.
		mustFiles(t, p, srv, func(f *Files) error {
			if _, err := f.Write(context.Background(), WriteRequest{Path: "d/text.txt", Data: []byte("more\n"), Append: true}); err != nil {
				return err
			}
			_, err := f.Write(context.Background(), WriteRequest{Path: "d/new.log", Data: []byte("one\n"), Append: true})
			return err
		})
		if got, _ := os.ReadFile(filepath.Join(srv.Home, "d", "text.txt")); string(got) != "héllo\nworld\nmore\n" {
			t.Errorf("after append: %q", got)
		}
		if got, _ := os.ReadFile(filepath.Join(srv.Home, "d", "new.log")); string(got) != "one\n" {
			t.Errorf("append to a new file: %q", got)
		}
		// No temporary file is left behind.
		ents, _ := os.ReadDir(filepath.Join(srv.Home, "d"))
		for _, e := range ents {
			if strings.Contains(e.Name(), ".sshjobs-") {
				t.Errorf("temporary file left: %s", e.Name())
			}
		}
	})
}

// A 5 MiB file read page by page: the pages concatenate to the file, and
// every page reports the whole file's sha256.
func TestFileReadPages(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		data := make([]byte, 5<<20+123)
		rand.Read(data)
		if err := os.WriteFile(filepath.Join(srv.Home, "big"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		var all []byte
		mustFiles(t, p, srv, func(f *Files) error {
			for off := int64(0); ; {
				r, err := f.Read(context.Background(), "~/big", off, MaxReadBytes)
				if err != nil {
					return err
				}
				if r.SHA256 != sum(data) || r.Size != int64(len(data)) || r.Mode.Perm() != 0o600 {
					t.Fatalf("page at %d: sha %s size %d mode %v", off, r.SHA256, r.Size, r.Mode)
				}
				all = append(all, r.Data...)
				off += int64(len(r.Data))
				if !r.Truncated {
					return nil
				}
			}
		})
		if sum(all) != sum(data) {
			t.Fatalf("pages concatenated: %d bytes, sha %s; want %d, %s", len(all), sum(all), len(data), sum(data))
		}
	})
}

// A reader never sees a half-written file while writes replace it.
func TestFileAtomicWrite(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		a, b := bytes.Repeat([]byte("a"), 1<<20), bytes.Repeat([]byte("b"), 1<<20)
		target := filepath.Join(srv.Home, "atomic")
		if err := os.WriteFile(target, a, 0o644); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var reads, bad atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() {
			for !stop.Load() {
				got, err := os.ReadFile(target)
				reads.Add(1)
				if err != nil || !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					bad.Add(1)
				}
			}
		})
		mustFiles(t, p, srv, func(f *Files) error {
			for i := range 10 {
				data := a
				if i%2 == 0 {
					data = b
				}
				if _, err := f.Write(context.Background(), WriteRequest{Path: target, Data: data}); err != nil {
					return err
				}
			}
			return nil
		})
		stop.Store(true)
		wg.Wait()
		if bad.Load() > 0 {
			t.Fatalf("%d of %d reads saw a half-written or missing file", bad.Load(), reads.Load())
		}
		t.Logf("%d reads during 10 writes", reads.Load())
	})
}

// A rewritten file keeps its owner, group and mode (setgid included);
// mode replaces the mode when given.
func TestFileKeepsOwnerAndMode(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		target := filepath.Join(srv.Home, "owned")
		os.WriteFile(target, []byte("old\n"), 0o600)
		os.Chown(target, 4321, 4322)
		syscall.Chmod(target, 0o2640)
		mustFiles(t, p, srv, func(f *Files) error {
			_, err := f.Write(context.Background(), WriteRequest{Path: target, Data: []byte("new\n")})
			return err
		})
		fi, err := os.Stat(target)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 4321 || st.Gid != 4322 || st.Mode&0o7777 != 0o2640 {
			t.Errorf("after write: uid %d gid %d mode %o; want 4321 4322 2640", st.Uid, st.Gid, st.Mode&0o7777)
		}
		mode := fs.FileMode(0o600)
		mustFiles(t, p, srv, func(f *Files) error {
			_, err := f.Write(context.Background(), WriteRequest{Path: target, Data: []byte("newer\n"), Mode: &mode})
			return err
		})
		fi, _ = os.Stat(target)
		st = fi.Sys().(*syscall.Stat_t)
		if st.Uid != 4321 || st.Mode&0o7777 != 0o600 {
			t.Errorf("with mode 600: uid %d mode %o", st.Uid, st.Mode&0o7777)
		}
	})
}

func TestFileIfSHA256(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		target := filepath.Join(srv.Home, "locked")
		os.WriteFile(target, []byte("v1\n"), 0o644)
		err := withFiles(t, p, srv, func(f *Files) error {
			_, err := f.Write(context.Background(), WriteRequest{Path: target, Data: []byte("v2\n"), IfSHA256: sum([]byte("v0\n"))})
			return err
		})
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), sum([]byte("v1\n"))) {
			t.Fatalf("stale if_sha256: %v; want a conflict naming the current hash", err)
		}
		if got, _ := os.ReadFile(target); string(got) != "v1\n" {
			t.Fatalf("file changed by a refused write: %q", got)
		}
		mustFiles(t, p, srv, func(f *Files) error {
			_, err := f.Write(context.Background(), WriteRequest{Path: target, Data: []byte("v2\n"), IfSHA256: strings.ToUpper(sum([]byte("v1\n")))})
			return err
		})
		if got, _ := os.ReadFile(target); string(got) != "v2\n" {
			t.Fatalf("matching if_sha256: %q", got)
		}
	})
}

// Writes to one path from many goroutines run one at a time: appends are
// all kept.
func TestFileConcurrentWrites(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				mustFiles(t, p, srv, func(f *Files) error {
					_, err := f.Write(context.Background(), WriteRequest{Path: "~/log", Data: fmt.Appendf(nil, "line %d\n", i), Append: true})
					return err
				})
			})
		}
		wg.Wait()
		got, _ := os.ReadFile(filepath.Join(srv.Home, "log"))
		if n := strings.Count(string(got), "\n"); n != 8 {
			t.Fatalf("8 concurrent appends kept %d lines:\n%s", n, got)
		}
	})
}

func TestFileList(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		dir := filepath.Join(srv.Home, "ls")
		os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
		os.WriteFile(filepath.Join(dir, "a.txt"), []byte("12345"), 0o640)
		os.WriteFile(filepath.Join(dir, ".hidden"), nil, 0o600)
		os.Symlink("a.txt", filepath.Join(dir, "link"))
		mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
		os.Chtimes(filepath.Join(dir, "a.txt"), mtime, mtime)
		mustFiles(t, p, srv, func(f *Files) error {
			l, err := f.List(context.Background(), "~/ls", false, DefaultListMax)
			if err != nil {
				return err
			}
			var got []string
			for _, e := range l.Entries {
				got = append(got, fmt.Sprintf("%s %s %d %o %s", e.Name, e.Type, e.Size, e.Mode.Perm(), e.Target))
			}
			want := []string{"a.txt file 5 640 ", "link symlink 5 777 a.txt", "sub dir 4096 755 "}
			if len(got) == 3 && strings.HasPrefix(got[1], "link symlink") && strings.HasSuffix(got[1], "777 a.txt") {
				want[1] = got[1] // a symlink's size is its target's length on Linux
			}
			if len(got) == 3 {
				want[2] = got[2][:len("sub dir ")] + strings.TrimPrefix(got[2], "sub dir ")
			}
			if strings.Join(got, "|") != strings.Join(want, "|") || l.Total != 3 || l.Truncated {
				t.Errorf("list: %q total %d truncated %v", got, l.Total, l.Truncated)
			}
			if !l.Entries[0].ModTime.Equal(mtime) {
				t.Errorf("mtime %v, want %v", l.Entries[0].ModTime, mtime)
			}
			l, err = f.List(context.Background(), dir, true, 2)
			if err != nil {
				return err
			}
			if len(l.Entries) != 2 || l.Entries[0].Name != ".hidden" || l.Total != 4 || !l.Truncated {
				t.Errorf("list all, max 2: %+v", l)
			}
			return nil
		})
	})
}

func TestFileErrors(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		os.MkdirAll(filepath.Join(srv.Home, "adir"), 0o755)
		os.WriteFile(filepath.Join(srv.Home, "afile"), []byte("x"), 0o644)
		cases := []struct {
			name string
			op   func(f *Files) error
			is   error
			text string
		}{
			{"read missing", func(f *Files) error { _, err := f.Read(context.Background(), "~/nope", 0, 10); return err }, fs.ErrNotExist, "no such file"},
			{"read folder", func(f *Files) error { _, err := f.Read(context.Background(), "~/adir", 0, 10); return err }, ErrIsDir, "ssh_list_dir"},
			{"write folder", func(f *Files) error {
				_, err := f.Write(context.Background(), WriteRequest{Path: "~/adir", Data: []byte("x")})
				return err
			}, ErrIsDir, "is a folder"},
			{"write without folder", func(f *Files) error {
				_, err := f.Write(context.Background(), WriteRequest{Path: "~/no/such/x", Data: []byte("x")})
				return err
			}, fs.ErrNotExist, "make_dirs"},
			{"list file", func(f *Files) error { _, err := f.List(context.Background(), "~/afile", false, 10); return err }, ErrNotDir, "ssh_read_file"},
			{"tilde user", func(f *Files) error { _, err := f.Read(context.Background(), "~root/x", 0, 10); return err }, nil, "~user"},
		}
		for _, c := range cases {
			err := withFiles(t, p, srv, c.op)
			if err == nil || c.is != nil && !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("%s: %v; want %v mentioning %q", c.name, err, c.is, c.text)
			}
		}
	})
}

// A root-only file: refused without sudo, read and written through sudo with
// the test user's password, keeping its owner and mode; a wrong password is
// refused and changes nothing.
func TestFileSudo(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{User: sshtest.TestUser}, func(t *testing.T, srv *sshtest.Server) {
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		target := filepath.Join(dir, "root-only.conf")
		if err := os.WriteFile(target, []byte("secret=1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p, _ := newSudoPool(t, srv, sshdial.StaticSecrets{sshdial.SecretSudo: srv.Password})
		err := withFiles(t, p, srv, func(f *Files) error { _, err := f.Read(context.Background(), target, 0, 100); return err })
		if !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("read without sudo: %v", err)
		}
		mustFiles(t, p, srv, func(f *Files) error {
			r, err := f.SudoRead(context.Background(), target, 0, 100)
			if err != nil {
				return err
			}
			if string(r.Data) != "secret=1\n" || r.SHA256 != sum([]byte("secret=1\n")) || r.UID != 0 || r.Mode.Perm() != 0o600 || r.Truncated {
				t.Errorf("sudo read: %+v", r)
			}
			w, err := f.SudoWrite(context.Background(), WriteRequest{Path: target, Data: []byte("secret=2\n"), IfSHA256: r.SHA256})
			if err != nil {
				return err
			}
			if w.SHA256 != sum([]byte("secret=2\n")) || w.UID != 0 || w.Mode.Perm() != 0o600 || w.Path != target {
				t.Errorf("sudo write: %+v", w)
			}
			_, err = f.SudoWrite(context.Background(), WriteRequest{Path: target, Data: []byte("x"), IfSHA256: r.SHA256})
			if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), sum([]byte("secret=2\n"))) {
				t.Errorf("stale if_sha256 with sudo: %v", err)
			}
			_, err = f.SudoRead(context.Background(), dir, 0, 100)
			if !errors.Is(err, ErrIsDir) {
				t.Errorf("sudo read of a folder: %v", err)
			}
			// A FIFO with no writer: cat would wait for one forever (and a
			// device like /dev/zero never ends), so it is refused as the
			// read without sudo refuses it.
			fifo := filepath.Join(dir, "pipe")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err = f.SudoRead(ctx, fifo, 0, 100); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("sudo read of a FIFO: %v", err)
			}
			// A write refuses it too, as the write without sudo does: an
			// append (or if_sha256) would read it and wait forever, a plain
			// write would replace it with a file (seen hanging in
			// TestToolArgsFuzzed).
			for _, req := range []WriteRequest{
				{Path: fifo, Data: []byte("x"), Append: true},
				{Path: fifo, Data: []byte("x"), IfSHA256: sum(nil)},
				{Path: fifo, Data: []byte("x")},
			} {
				if _, err = f.SudoWrite(ctx, req); err == nil || !strings.Contains(err.Error(), "not a regular file") {
					t.Errorf("sudo write to a FIFO (append %v, if_sha256 %q): %v", req.Append, req.IfSHA256, err)
				}
			}
			if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
				t.Errorf("the FIFO after the writes: %v %v", fi, err)
			}
			return nil
		})
		fi, _ := os.Stat(target)
		if got, _ := os.ReadFile(target); string(got) != "secret=2\n" || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("on disk after sudo write: %q %v", got, fi.Mode())
		}
		// No staged copy is left in the user's home.
		if ents, _ := os.ReadDir(srv.Home); len(ents) > 0 {
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".sshjobs-sudo-") {
					t.Errorf("staged content left: %s", e.Name())
				}
			}
		}
		bad, _ := newSudoPool(t, srv, sshdial.StaticSecrets{sshdial.SecretSudo: "wrong-password"})
		err = withFiles(t, bad, srv, func(f *Files) error {
			_, err := f.SudoWrite(context.Background(), WriteRequest{Path: target, Data: []byte("evil\n")})
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "incorrect password") {
			t.Errorf("wrong password: %v", err)
		}
		if got, _ := os.ReadFile(target); string(got) != "secret=2\n" {
			t.Errorf("a refused sudo write changed the file: %q", got)
		}
	})
}

// On a host without sha256sum or shasum an upload and a download are
// verified by reading the remote file back over SFTP.
func TestFileTransferVerifyBySFTP(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		local := filepath.Join(t.TempDir(), "f")
		data := make([]byte, 100000)
		rand.Read(data)
		os.WriteFile(local, data, 0o644)
		check := func(p string) (string, error) { return p, nil }
		mustFiles(t, p, srv, func(f *Files) error {
			f.c.noSumTool.Store(true) // as on a host that has neither
			up, err := f.Upload(context.Background(), TransferRequest{Local: local, Remote: "~/f", Check: check})
			if err != nil {
				return err
			}
			down, err := f.Download(context.Background(), TransferRequest{Local: local + ".back", Remote: "~/f", Check: check})
			if err != nil {
				return err
			}
			if up.Verified != "sftp" || down.Verified != "sftp" || up.Files[0].SHA256 != sum(data) || down.Files[0].SHA256 != sum(data) {
				t.Errorf("verified by %s/%s: %+v %+v", up.Verified, down.Verified, up.Files, down.Files)
			}
			return nil
		})
		sameFileT(t, local, local+".back")
	})
}

func sameFileT(t *testing.T, a, b string) {
	t.Helper()
	x, _ := os.ReadFile(a)
	y, err := os.ReadFile(b)
	if err != nil || !bytes.Equal(x, y) {
		t.Errorf("%s and %s differ: %v", a, b, err)
	}
}

// A full disk: the write fails with a clear error, the file keeps its old
// content and no temporary file is left.
func TestFileDiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "sshjobs-test", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	target := filepath.Join(dir, "f")
	os.WriteFile(target, []byte("old\n"), 0o644)
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		err := withFiles(t, p, srv, func(f *Files) error {
			_, err := f.Write(context.Background(), WriteRequest{Path: target, Data: bytes.Repeat([]byte("x"), 1<<20)})
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "full") {
			t.Errorf("write to a full disk: %v", err)
		}
		if got, _ := os.ReadFile(target); string(got) != "old\n" {
			t.Errorf("file after a failed write: %.20q", got)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("left in the folder: %v", ents)
		}
	})
}
