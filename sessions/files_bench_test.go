package sessions

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// TestFileTransferThroughput compares, on one OpenSSH sshd, an upload and a
// download of one file (200 MiB; SSHJOBS_BENCH_MIB to change) through
// Files.Upload/Download (with their sha256 verification) with scp and sftp
// of the same file, and prints the throughputs and how much this process's
// peak RSS rose during each of ours. It is a measurement, not a check:
//
//	SSHJOBS_BENCH_TRANSFER=1 go test ./sessions -run TestFileTransferThroughput -v
func TestFileTransferThroughput(t *testing.T) {
	if os.Getenv("SSHJOBS_BENCH_TRANSFER") == "" {
		t.Skip("set SSHJOBS_BENCH_TRANSFER=1 to measure")
	}
	if _, err := exec.LookPath("scp"); err != nil {
		t.Skip("no scp")
	}
	mib := 200
	if v, err := strconv.Atoi(os.Getenv("SSHJOBS_BENCH_MIB")); err == nil && v > 0 {
		mib = v
	}
	srv := sshtest.StartOpenSSH(t, sshtest.Options{})
	p := newTestPool(t, srv, PoolConfig{})
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, _ := os.Create(src)
	io.CopyN(f, rand.Reader, int64(mib)<<20)
	f.Close()
	check := func(p string) (string, error) { return p, nil }
	mustFiles(t, p, srv, func(f *Files) error { return nil }) // connect and open SFTP first

	type row struct {
		name string
		took time.Duration
		rss  int64
	}
	var rows []row
	measure := func(name string, fn func() error) {
		resetPeakRSS()
		before := peakRSS()
		start := time.Now()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rows = append(rows, row{name, time.Since(start), peakRSS() - before})
	}
	remote := func(n string) string { return filepath.Join(srv.Home, n) }
	measure("sshjobs upload", func() error {
		return withFiles(t, p, srv, func(f *Files) error {
			_, err := f.Upload(context.Background(), TransferRequest{Local: src, Remote: remote("up"), Check: check})
			return err
		})
	})
	measure("sshjobs download", func() error {
		return withFiles(t, p, srv, func(f *Files) error {
			_, err := f.Download(context.Background(), TransferRequest{Local: filepath.Join(dir, "down"), Remote: remote("up"), Check: check})
			return err
		})
	})
	run := func(name string, args ...string) func() error {
		return func() error {
			out, err := exec.Command(name, args...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}
	}
	measure("scp upload", run("scp", "-q", "-F", srv.SSHConfig, src, srv.Alias+":"+remote("scp-up")))
	measure("scp download", run("scp", "-q", "-F", srv.SSHConfig, srv.Alias+":"+remote("scp-up"), filepath.Join(dir, "scp-down")))
	sftpBatch := func(cmd string) func() error {
		batch := filepath.Join(dir, "batch")
		os.WriteFile(batch, []byte(cmd+"\n"), 0o600)
		return run("sftp", "-q", "-F", srv.SSHConfig, "-b", batch, srv.Alias)
	}
	measure("sftp put", sftpBatch(fmt.Sprintf("put %s %s", src, remote("sftp-up"))))
	measure("sftp get", sftpBatch(fmt.Sprintf("get %s %s", remote("sftp-up"), filepath.Join(dir, "sftp-down"))))

	for _, r := range rows {
		n := float64(mib)
		rss := ""
		if strings.HasPrefix(r.name, "sshjobs") {
			rss = fmt.Sprintf("  peak RSS +%.1f MiB", float64(r.rss)/(1<<20))
		}
		t.Logf("%-18s %6.0f MB/s  (%v)%s", r.name, n*(1<<20)/1e6/r.took.Seconds(), r.took.Round(time.Millisecond), rss)
	}
}

// resetPeakRSS resets the kernel's peak RSS of this process (Linux 4.0+).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is this process's peak resident set size (VmHWM), in bytes.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
