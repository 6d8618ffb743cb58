package sshtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestUser is the unprivileged account that tests needing a password and
// sudo log in as (Options.User). It is created once, as root, and kept; its
// sudoers entry exists only while a test server uses it.
const TestUser = "sshjobs-test"

const (
	// testUserState holds the test user's password, created at random once,
	// so that concurrent test processes (packages run in parallel) agree on it.
	testUserState = "/var/lib/sshjobs-test"
	sudoersDir    = "/etc/sudoers.d"
)

// testAccount is the test user as a server needs it.
type testAccount struct {
	name, home, password string
	uid, gid             int
}

// ensureTestUser creates (idempotently) TestUser with a password, a home and
// /bin/bash, and installs a sudoers entry that asks for the password every
// time, removed when the test ends. It skips the test where that cannot be
// done (not root, no useradd or sudo), except with SSHJOBS_REQUIRE_SSHD=1
// (CI), where a missing sudo is a failure.
func ensureTestUser(t testing.TB) testAccount {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("SSHJOBS_REQUIRE_SSHD") == "1" {
			t.Fatalf("sshtest: test user: "+format+" (SSHJOBS_REQUIRE_SSHD=1)", args...)
		}
		t.Skipf("sshtest: test user: "+format, args...)
	}
	if os.Geteuid() != 0 {
		skip("creating %s needs root", TestUser)
	}
	for _, tool := range []string{"useradd", "chpasswd", "sudo", "visudo"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("%s is not installed", tool)
		}
	}
	if err := os.MkdirAll(testUserState, 0o700); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	// One process at a time creates the user and sets its password.
	lock, err := os.OpenFile(filepath.Join(testUserState, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("sshtest: lock: %v", err)
	}

	pwFile := filepath.Join(testUserState, "password")
	pw, err := os.ReadFile(pwFile)
	if err != nil || len(pw) == 0 {
		b := make([]byte, 12)
		rand.Read(b)
		pw = []byte(hex.EncodeToString(b))
		if err := os.WriteFile(pwFile, pw, 0o600); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}
	if _, err := user.Lookup(TestUser); err != nil {
		run(t, nil, "useradd", "--create-home", "--shell", "/bin/bash", TestUser)
	}
	// Every time, with the same password: a password set by hand is reset.
	run(t, strings.NewReader(TestUser+":"+string(pw)+"\n"), "chpasswd")
	u, err := user.Lookup(TestUser)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	installSudoers(t)
	return testAccount{name: TestUser, home: u.HomeDir, password: string(pw), uid: uid, gid: gid}
}

// installSudoers writes this process's sudoers entry for TestUser: the
// password every time (timestamp_timeout=0), no lecture. The file is named
// after the process, so that parallel test processes do not remove each
// other's; files of processes that died are removed here.
func installSudoers(t testing.TB) {
	t.Helper()
	old, _ := filepath.Glob(filepath.Join(sudoersDir, TestUser+"-*"))
	for _, f := range old {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(f), TestUser+"-"))
		if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH {
			os.Remove(f)
		}
	}
	path := filepath.Join(sudoersDir, fmt.Sprintf("%s-%d", TestUser, os.Getpid()))
	sudoers.Lock()
	defer sudoers.Unlock()
	sudoers.users++
	t.Cleanup(func() {
		sudoers.Lock()
		defer sudoers.Unlock()
		if sudoers.users--; sudoers.users == 0 {
			os.Remove(path)
		}
	})
	text := fmt.Sprintf("# Written by sshtest (pid %d) for tests; removed when they end.\n"+
		"Defaults:%[2]s !lecture, timestamp_timeout=0\n%[2]s ALL=(ALL) ALL\n", os.Getpid(), TestUser)
	tmp := filepath.Join(testUserState, "sudoers.tmp"+strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(tmp, []byte(text), 0o440); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	defer os.Remove(tmp)
	// A broken sudoers file would break sudo for everyone: check it first.
	run(t, nil, "visudo", "-c", "-q", "-f", tmp)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
}

// sudoers counts the servers of this process using its sudoers file: the
// last one out removes it.
var sudoers struct {
	sync.Mutex
	users int
}

func run(t testing.TB, stdin *strings.Reader, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sshtest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
