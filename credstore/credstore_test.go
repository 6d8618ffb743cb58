package credstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
	"github.com/sshjobs/sshjobs/sqlstore"

	_ "modernc.org/sqlite"
)

// fast keeps the tests quick on a shared machine; the parameters are stored
// in the key row, so the code paths are those of DefaultParams.
var fast = credstore.Params{Time: 1, MemoryKiB: 64, Threads: 1}

func openDB(t *testing.T, path string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newStore(t *testing.T, master string) (*credstore.Store, *sqlstore.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	db := openDB(t, path)
	return credstore.New(db, master, fast), db, path
}

// secrets used in these tests, all scanned for in the database files.
var testSecrets = map[sshdial.SecretKind]string{
	sshdial.SecretPassword:   "pw-Zq8#login-secret",
	sshdial.SecretPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-material-Xy7\n-----END OPENSSH PRIVATE KEY-----\n",
	sshdial.SecretPassphrase: "phrase-Kp3-secret",
	sshdial.SecretSudo:       "sudo-Mw9-secret",
	sshdial.SecretEnable:     "enable-Rt5-secret",
}

func TestRoundTripEveryKind(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t, "master-1")
	for kind, v := range testSecrets {
		if err := s.Put(ctx, "root@web1:22", "web1", kind, []byte(v)); err != nil {
			t.Fatalf("Put %s: %v", kind, err)
		}
	}
	for kind, v := range testSecrets {
		got, ok, err := s.Get(ctx, "root@web1:22", kind)
		if err != nil || !ok || string(got) != v {
			t.Errorf("Get %s = %q, %v, %v", kind, got, ok, err)
		}
		// Not by alias: another host id gets nothing.
		if got, ok, err = s.Get(ctx, "root@10.0.0.9:22", kind); err != nil || ok {
			t.Errorf("Get %s for another host = %q, %v, %v", kind, got, ok, err)
		}
	}
	// Replacing a value.
	if err := s.Put(ctx, "root@web1:22", "web1", sshdial.SecretPassword, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Get(ctx, "root@web1:22", sshdial.SecretPassword); string(got) != "second" {
		t.Errorf("after replace: %q", got)
	}

	rows, err := s.List(ctx)
	if err != nil || len(rows) != len(testSecrets) {
		t.Fatalf("List = %d rows, %v", len(rows), err)
	}
	for _, r := range rows {
		if r.Value != nil || r.Host != "root@web1:22" || r.Alias != "web1" || r.UpdatedAt.IsZero() {
			t.Errorf("List row %+v", r)
		}
	}

	// Missing.
	if _, ok, err := s.Get(ctx, "root@other:22", sshdial.SecretPassword); ok || err != nil {
		t.Errorf("missing host: ok=%v err=%v", ok, err)
	}
	// Delete one kind, then all (by alias).
	if n, err := s.Delete(ctx, "root@web1:22", sshdial.SecretSudo); n != 1 || err != nil {
		t.Errorf("Delete sudo = %d, %v", n, err)
	}
	if _, ok, _ := s.Get(ctx, "root@web1:22", sshdial.SecretSudo); ok {
		t.Error("sudo still there after Delete")
	}
	if n, err := s.Delete(ctx, "web1", ""); n != len(testSecrets)-1 || err != nil {
		t.Errorf("Delete all = %d, %v", n, err)
	}
	if _, err := s.Delete(ctx, "web1", "bogus"); err == nil {
		t.Error("Delete with an unknown kind: no error")
	}
	if err := s.Put(ctx, "root@web1:22", "", "bogus", []byte("x")); err == nil {
		t.Error("Put with an unknown kind: no error")
	}
}

func TestWrongMasterPassword(t *testing.T) {
	ctx := context.Background()
	s, db, _ := newStore(t, "right")
	if err := s.Put(ctx, "u@a:22", "a", sshdial.SecretPassword, []byte("pw-a")); err != nil {
		t.Fatal(err)
	}
	wrong := credstore.New(db, "wrong", fast)
	for range 2 { // the second answer comes from the cached failure
		start := time.Now()
		_, ok, err := wrong.Get(ctx, "u@a:22", sshdial.SecretPassword)
		if !errors.Is(err, credstore.ErrWrongMaster) || ok || !strings.Contains(err.Error(), "wrong master password") {
			t.Fatalf("Get with a wrong master password: ok=%v err=%v", ok, err)
		}
		if strings.Contains(err.Error(), "pw-a") || strings.Contains(err.Error(), "wrong\"") {
			t.Errorf("error shows a secret: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	}
	if err := wrong.Put(ctx, "u@b:22", "", sshdial.SecretPassword, []byte("x")); !errors.Is(err, credstore.ErrWrongMaster) {
		t.Errorf("Put with a wrong master password: %v", err)
	}
	// Everything that does not need the key goes on working.
	if _, ok, err := wrong.Get(ctx, "u@other:22", sshdial.SecretPassword); ok || err != nil {
		t.Errorf("host without rows: ok=%v err=%v", ok, err)
	}
	if rows, err := wrong.List(ctx); err != nil || len(rows) != 1 {
		t.Errorf("List = %v, %v", rows, err)
	}
	// The right password still works in another store on the same database.
	if v, ok, err := credstore.New(db, "right", fast).Get(ctx, "u@a:22", sshdial.SecretPassword); string(v) != "pw-a" || !ok || err != nil {
		t.Errorf("right password: %q %v %v", v, ok, err)
	}
}

func TestNoMasterPassword(t *testing.T) {
	ctx := context.Background()
	s, db, _ := newStore(t, "m")
	if err := s.Put(ctx, "u@a:22", "", sshdial.SecretPassword, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	off := credstore.New(db, "", fast)
	if off.Enabled() {
		t.Error("Enabled without a master password")
	}
	err := off.Put(ctx, "u@a:22", "", sshdial.SecretSudo, []byte("x"))
	if !errors.Is(err, credstore.ErrNoMaster) || !strings.Contains(err.Error(), "SSHJOBS_MASTER_PASSWORD") {
		t.Errorf("Put without a master password: %v", err)
	}
	if _, ok, err := off.Get(ctx, "u@a:22", sshdial.SecretPassword); ok || err != nil {
		t.Errorf("Get without a master password: ok=%v err=%v", ok, err)
	}
}

// rawDB opens the database file directly, as an attacker with the file would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func TestTamperedAndMovedValues(t *testing.T) {
	ctx := context.Background()
	s, _, path := newStore(t, "m")
	for _, h := range []string{"u@a:22", "u@b:22"} {
		for _, k := range []sshdial.SecretKind{sshdial.SecretPassword, sshdial.SecretSudo} {
			if err := s.Put(ctx, h, "", k, []byte(h+string(k))); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw := rawDB(t, path)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := raw.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	// One bit flipped in a's password.
	var v []byte
	if err := raw.QueryRow("SELECT value FROM credentials WHERE host = 'u@a:22' AND kind = 'password'").Scan(&v); err != nil {
		t.Fatal(err)
	}
	v[len(v)-1] ^= 1
	exec("UPDATE credentials SET value = ? WHERE host = 'u@a:22' AND kind = 'password'", v)
	// a's sudo value copied into b's password row (another host and kind),
	// and b's sudo value into b's password... only one row per key: also copy
	// a's sudo into b's sudo row (same kind, another host).
	exec("UPDATE credentials SET value = (SELECT value FROM credentials WHERE host = 'u@a:22' AND kind = 'sudo') WHERE host = 'u@b:22' AND kind = 'password'")
	exec("UPDATE credentials SET value = (SELECT value FROM credentials WHERE host = 'u@a:22' AND kind = 'sudo') WHERE host = 'u@b:22' AND kind = 'sudo'")
	for _, c := range []struct {
		host string
		kind sshdial.SecretKind
	}{{"u@a:22", sshdial.SecretPassword}, {"u@b:22", sshdial.SecretPassword}, {"u@b:22", sshdial.SecretSudo}} {
		got, ok, err := s.Get(ctx, c.host, c.kind)
		if !errors.Is(err, credstore.ErrTampered) || ok || got != nil {
			t.Errorf("%s %s: %q %v %v, want ErrTampered", c.host, c.kind, got, ok, err)
		}
	}
	// The untouched value still opens.
	if got, ok, err := s.Get(ctx, "u@a:22", sshdial.SecretSudo); string(got) != "u@a:22sudo" || !ok || err != nil {
		t.Errorf("untouched: %q %v %v", got, ok, err)
	}
	// A damaged key row is a wrong password, not garbage or a crash.
	exec("UPDATE credential_key SET verifier = zeroblob(40)")
	if _, _, err := credstore.New(openDB(t, path), "m", fast).Get(ctx, "u@a:22", sshdial.SecretSudo); !errors.Is(err, credstore.ErrWrongMaster) {
		t.Errorf("damaged verifier: %v", err)
	}
}

func TestChangeMaster(t *testing.T) {
	ctx := context.Background()
	s, db, path := newStore(t, "old-master")
	for k, v := range testSecrets {
		if err := s.Put(ctx, "u@h:22", "h", k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	var saltBefore []byte
	rawDB(t, path).QueryRow("SELECT salt FROM credential_key").Scan(&saltBefore)
	if err := s.ChangeMaster(ctx, "new-master"); err != nil {
		t.Fatal(err)
	}
	// The same store goes on with the new key.
	if v, ok, err := s.Get(ctx, "u@h:22", sshdial.SecretSudo); string(v) != testSecrets[sshdial.SecretSudo] || !ok || err != nil {
		t.Errorf("same store after passwd: %q %v %v", v, ok, err)
	}
	if _, _, err := credstore.New(db, "old-master", fast).Get(ctx, "u@h:22", sshdial.SecretSudo); !errors.Is(err, credstore.ErrWrongMaster) {
		t.Errorf("old password after passwd: %v", err)
	}
	fresh := credstore.New(db, "new-master", fast)
	for k, v := range testSecrets {
		if got, ok, err := fresh.Get(ctx, "u@h:22", k); string(got) != v || !ok || err != nil {
			t.Errorf("%s after passwd: %q %v %v", k, got, ok, err)
		}
	}
	var saltAfter []byte
	rawDB(t, path).QueryRow("SELECT salt FROM credential_key").Scan(&saltAfter)
	if bytes.Equal(saltBefore, saltAfter) || len(saltAfter) != 16 {
		t.Errorf("salt not renewed: %x -> %x", saltBefore, saltAfter)
	}
	// A wrong current password changes nothing.
	if err := credstore.New(db, "nope", fast).ChangeMaster(ctx, "x"); !errors.Is(err, credstore.ErrWrongMaster) {
		t.Errorf("passwd with a wrong password: %v", err)
	}
	// A value that does not decrypt stops the change: nothing is re-encrypted.
	if _, err := rawDB(t, path).Exec("UPDATE credentials SET value = zeroblob(40) WHERE kind = 'enable'"); err != nil {
		t.Fatal(err)
	}
	if err := fresh.ChangeMaster(ctx, "third"); !errors.Is(err, credstore.ErrTampered) {
		t.Errorf("passwd over a tampered value: %v", err)
	}
	if _, ok, err := credstore.New(db, "new-master", fast).Get(ctx, "u@h:22", sshdial.SecretSudo); !ok || err != nil {
		t.Errorf("failed passwd changed the key: %v %v", ok, err)
	}
}

// The store comes before the environment in the chain app.go builds.
func TestPrecedenceStoreOverEnv(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t, "m")
	h := &sshconfig.Host{User: "root", HostName: "10.0.0.5", Port: 22, Alias: "web1", SecretAlias: "web1"}
	env := map[string]string{"OVRD_web1_PASS": "from-env", "OVRD_WEB1_SUDO_PASS": "sudo-env"}
	chain := sshdial.SecretChain{s, sshdial.EnvSecrets{Getenv: func(k string) string { return env[k] }}, sshdial.StaticSecrets{sshdial.SecretPassword: "param"}}
	if v, _, _ := chain.Secret(ctx, h, sshdial.SecretPassword); v != "from-env" {
		t.Errorf("no stored value: %q, want the environment's", v)
	}
	if err := s.Put(ctx, credstore.HostID(h), "web1", sshdial.SecretPassword, []byte("from-store")); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := chain.Secret(ctx, h, sshdial.SecretPassword); v != "from-store" {
		t.Errorf("stored value: %q, want the store's", v)
	}
	if v, _, _ := chain.Secret(ctx, h, sshdial.SecretSudo); v != "sudo-env" {
		t.Errorf("sudo: %q, want the environment's", v)
	}
	// A target that changed the user gets no alias secrets (SecretAlias ""),
	// from the store either.
	other := &sshconfig.Host{User: "admin", HostName: "10.0.0.5", Port: 22, Alias: "web1"}
	if v, ok, _ := s.Secret(ctx, other, sshdial.SecretPassword); ok {
		t.Errorf("other user got %q", v)
	}
	// private_key is the store's alone: the environment does not answer it.
	if _, ok, err := (sshdial.EnvSecrets{Getenv: func(string) string { return "x" }}).Secret(ctx, h, sshdial.SecretPrivateKey); ok || err != nil {
		t.Errorf("env private_key: %v %v", ok, err)
	}
}

// No plaintext secret anywhere in the database files.
func TestNoPlaintextInDatabaseFiles(t *testing.T) {
	ctx := context.Background()
	s, db, path := newStore(t, "master-plain-Qv2")
	for k, v := range testSecrets {
		if err := s.Put(ctx, "u@h:22", "h", k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ChangeMaster(ctx, "master-new-Jd4"); err != nil {
		t.Fatal(err)
	}
	ScanForSecrets(t, db, path, append(secretValues(), "master-plain-Qv2", "master-new-Jd4"))
}

func secretValues() []string {
	var out []string
	for _, v := range testSecrets {
		out = append(out, v)
	}
	return out
}

// ScanForSecrets reads the database file and its -wal and -shm (before and
// after closing db, which checkpoints) and fails on any secret found.
func ScanForSecrets(t *testing.T, db *sqlstore.DB, path string, secrets []string) {
	t.Helper()
	scan := func() {
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, s := range secrets {
				// The private key's body is the part worth finding.
				needle := s
				if i := strings.Index(s, "key-material"); i >= 0 {
					needle = "key-material"
				}
				if bytes.Contains(b, []byte(needle)) {
					t.Errorf("%s holds a secret in the clear (%d bytes of it)", filepath.Base(f), len(needle))
				}
			}
		}
	}
	scan()
	db.Close()
	scan()
}

// A password login to a real sshd (and the in-process server) with the
// password only in the store, read back through a store opened afresh on the
// database file; and a publickey login with the key only in the store.
func TestLoginFromStore(t *testing.T) {
	sshtest.NoAgent(t)
	sshtest.Each(t, sshtest.Options{User: sshtest.TestUser, SSHDConfig: []string{"PasswordAuthentication yes"}}, func(t *testing.T, srv *sshtest.Server) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "sshjobs.db")
		h, err := (&sshconfig.Resolver{ConfigFile: srv.SSHConfig}).Resolve(ctx, srv.Alias)
		if err != nil {
			t.Fatal(err)
		}
		h.IdentityAgent, h.IdentityFiles, h.ConnectTimeout = "none", []string{filepath.Join(t.TempDir(), "none")}, 10*time.Second
		key, err := os.ReadFile(srv.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		func() {
			db, err := sqlstore.Open(ctx, path, sqlstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := credstore.New(db, "m", fast).Put(ctx, credstore.HostID(h), h.Alias, sshdial.SecretPassword, []byte(srv.Password)); err != nil {
				t.Fatal(err)
			}
		}()
		db := openDB(t, path)
		store := credstore.New(db, "m", fast)
		d := &sshdial.Dialer{Secrets: sshdial.SecretChain{store, sshdial.EnvSecrets{Getenv: func(string) string { return "" }}}}
		c, info, err := d.Dial(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if info.AuthMethod != sshdial.AuthPassword {
			t.Errorf("AuthMethod = %q, want password", info.AuthMethod)
		}

		// The key by value, no key file: publickey.
		if _, err := store.Delete(ctx, credstore.HostID(h), sshdial.SecretPassword); err != nil {
			t.Fatal(err)
		}
		if err := store.Put(ctx, credstore.HostID(h), h.Alias, sshdial.SecretPrivateKey, key); err != nil {
			t.Fatal(err)
		}
		c, info, err = d.Dial(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if info.AuthMethod != sshdial.AuthPublicKey {
			t.Errorf("AuthMethod = %q, want publickey", info.AuthMethod)
		}
		ScanForSecrets(t, db, path, []string{srv.Password, "OPENSSH PRIVATE KEY"})
	})
}

// A secret is used only for the destination it was saved for: when the
// alias it was saved under later leads elsewhere (ssh_config or OVRD_HOST
// changed), the new destination gets nothing (review finding: rows were
// found by alias too, and sent to whatever the alias resolved to now).
func TestSecretOnlyForItsDestination(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t, "m")
	saved := &sshconfig.Host{User: "root", HostName: "10.0.0.5", Port: 22, Alias: "web1", SecretAlias: "web1"}
	if err := s.Put(ctx, credstore.HostID(saved), "web1", sshdial.SecretPassword, []byte("for-10.0.0.5")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Secret(ctx, saved, sshdial.SecretPassword); !ok || err != nil || v != "for-10.0.0.5" {
		t.Fatalf("its own destination: %q %v %v", v, ok, err)
	}
	moved := &sshconfig.Host{User: "root", HostName: "10.0.0.6", Port: 22, Alias: "web1", SecretAlias: "web1"}
	if v, ok, err := s.Secret(ctx, moved, sshdial.SecretPassword); ok || err != nil {
		t.Errorf("web1 now at 10.0.0.6 got the secret saved for 10.0.0.5: %q %v", v, err)
	}
}

// After `sshjobs secret passwd` in another process, a process that opened
// the store with the old password says so (restart it) instead of
// reporting the values as tampered with, and writes nothing under the old
// key, which no other process could read (review finding).
func TestMasterChangedByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	running := credstore.New(openDB(t, path), "old", fast)
	if err := running.Put(ctx, "u@a:22", "a", sshdial.SecretPassword, []byte("pw-a")); err != nil {
		t.Fatal(err)
	}
	if err := credstore.New(openDB(t, path), "old", fast).ChangeMaster(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	_, ok, err := running.Get(ctx, "u@a:22", sshdial.SecretPassword)
	if ok || !errors.Is(err, credstore.ErrMasterChanged) || !strings.Contains(err.Error(), "restart") {
		t.Errorf("Get after passwd elsewhere: ok=%v err=%v", ok, err)
	}
	if err := running.Put(ctx, "u@b:22", "b", sshdial.SecretPassword, []byte("pw-b")); !errors.Is(err, credstore.ErrMasterChanged) {
		t.Errorf("Put after passwd elsewhere: %v", err)
	}
	fresh := credstore.New(openDB(t, path), "new", fast)
	if v, ok, err := fresh.Get(ctx, "u@a:22", sshdial.SecretPassword); string(v) != "pw-a" || !ok || err != nil {
		t.Errorf("new process, new password: %q %v %v", v, ok, err)
	}
	if _, ok, err := fresh.Get(ctx, "u@b:22", sshdial.SecretPassword); ok || err != nil {
		t.Errorf("a value written under the old key: ok=%v err=%v", ok, err)
	}
}
