package sshdial

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestHostKeyAcceptNewRecords(t *testing.T) {
	sshtest.NoAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	h := serverHost(t, s)
	// A folder that does not exist yet, as ~/.ssh on a fresh machine.
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	h.UserKnownHostsFiles = []string{kh}
	h.GlobalKnownHostsFiles = nil
	h.StrictHostKeyChecking = sshconfig.StrictAcceptNew
	d := &Dialer{Logger: dialLogger(t)}

	c, info, err := d.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if info.HostKeyStatus != HostKeyTrustedNow || info.HostKeyFingerprint != ssh.FingerprintSHA256(s.HostKey) {
		t.Errorf("info = %+v, want trusted_now with %s", info, ssh.FingerprintSHA256(s.HostKey))
	}
	b, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	want := sshtest.KnownHostsLine(s, s.HostKey) + "\n"
	if string(b) != want {
		t.Errorf("known_hosts = %q, want %q", b, want)
	}
	if st, _ := os.Stat(kh); st.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(kh)); st.Mode().Perm() != 0o700 {
		t.Errorf("folder mode %v, want 0700", st.Mode().Perm())
	}

	// Known from now on, and recorded once.
	c, info, err = d.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if info.HostKeyStatus != HostKeyKnown {
		t.Errorf("second dial: status %q, want known", info.HostKeyStatus)
	}
	if b2, _ := os.ReadFile(kh); string(b2) != want {
		t.Errorf("known_hosts after second dial = %q, want %q", b2, want)
	}

	// StrictHostKeyChecking no records new hosts too; a file without a final
	// newline gets one before the new line; HostKeyAlias names the entry.
	kh2 := filepath.Join(t.TempDir(), "known_hosts")
	sshtest.WriteFile(t, kh2, "# no newline at the end")
	h.UserKnownHostsFiles = []string{kh2}
	h.StrictHostKeyChecking = sshconfig.StrictNo
	h.HostKeyAlias = "myalias"
	c, info, err = d.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	b, _ = os.ReadFile(kh2)
	want = "# no newline at the end\n" + knownhosts.Line([]string{"myalias"}, s.HostKey) + "\n"
	if info.HostKeyStatus != HostKeyTrustedNow || string(b) != want {
		t.Errorf("alias: status %q, known_hosts %q; want trusted_now, %q", info.HostKeyStatus, b, want)
	}
}

func TestHostKeyStrictYesRefusesUnknown(t *testing.T) {
	sshtest.NoAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	h := serverHost(t, s)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	h.UserKnownHostsFiles = []string{kh}
	h.StrictHostKeyChecking = sshconfig.StrictYes

	_, _, err := (&Dialer{}).Dial(context.Background(), h)
	var hke *HostKeyError
	if !errors.As(err, &hke) || hke.Kind != "unknown" {
		t.Fatalf("err = %v, want an unknown-host HostKeyError", err)
	}
	for _, want := range []string{ssh.FingerprintSHA256(s.HostKey), "StrictHostKeyChecking", "ssh-keyscan -p", kh, "accept-new"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	if _, err := os.Stat(kh); !os.IsNotExist(err) {
		t.Error("a refused key must not be recorded")
	}
}

// A changed key is refused whatever StrictHostKeyChecking says, naming both
// fingerprints and the file:line of the known entry.
func TestHostKeyChangedRefused(t *testing.T) {
	sshtest.NoAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	other := sshtest.StartInProcess(t, sshtest.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	// s's address with other's key: as if s had been reinstalled.
	sshtest.WriteFile(t, kh, "# line 1\n"+sshtest.KnownHostsLine(s, other.HostKey)+"\n")

	for _, strict := range []string{sshconfig.StrictYes, sshconfig.StrictAcceptNew, sshconfig.StrictNo} {
		t.Run(strict, func(t *testing.T) {
			h := serverHost(t, s)
			h.UserKnownHostsFiles = []string{kh}
			h.StrictHostKeyChecking = strict
			_, _, err := (&Dialer{}).Dial(context.Background(), h)
			var hke *HostKeyError
			if !errors.As(err, &hke) || hke.Kind != "changed" {
				t.Fatalf("err = %v, want a changed-key HostKeyError", err)
			}
			for _, want := range []string{ssh.FingerprintSHA256(s.HostKey), ssh.FingerprintSHA256(other.HostKey),
				kh + ":2", "ssh-keygen -R", "CHANGED"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message lacks %q: %v", want, err)
				}
			}
		})
	}
	if b, _ := os.ReadFile(kh); strings.Count(string(b), "\n") != 2 {
		t.Errorf("known_hosts was modified: %q", b)
	}
}

// The algorithms offered are those of the known keys, RSA as rsa-sha2-*.
func TestHostKeyAlgorithms(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, _ := ssh.NewPublicKey(&rsaKey.PublicKey)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	sshtest.WriteFile(t, kh, sshtest.KnownHostsLine(s, rsaPub)+"\n"+sshtest.KnownHostsLine(s, s.HostKey)+"\n"+
		knownhosts.Line([]string{"elsewhere"}, probeKey)+"\n")
	h := &sshconfig.Host{HostName: s.Host, Port: s.Port, UserKnownHostsFiles: []string{kh}}
	hk, err := newHostKeyCheck(h)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA, ssh.KeyAlgoED25519}
	if got := hk.algorithms(); !reflect.DeepEqual(got, want) {
		t.Errorf("algorithms = %q, want %q", got, want)
	}
	h.HostName = "unknown.example"
	if got := hk.algorithms(); got != nil {
		t.Errorf("unknown host: algorithms = %q, want nil (library default)", got)
	}
}

// newSigner returns a fresh ed25519 signer (a CA, or another host's key).
func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// caLine is a known_hosts @cert-authority line.
func caLine(pattern string, ca ssh.PublicKey) string {
	return "@cert-authority " + pattern + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca)))
}

// revokedLine is a known_hosts @revoked line.
func revokedLine(key ssh.PublicKey) string {
	return "@revoked * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// keygenFind asks OpenSSH's `ssh-keygen -F name -f file` for the entry of
// name, proving that OpenSSH reads what we wrote. It returns the key lines
// found ("" when none).
func keygenFind(t *testing.T, name, file string) string {
	t.Helper()
	p, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen is not installed")
	}
	out, err := exec.Command(p, "-F", name, "-f", file).Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	var keys []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	return strings.Join(keys, "\n")
}

// keyField is "type base64" of a key, as it appears in known_hosts.
func keyField(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func dialWith(t *testing.T, h *sshconfig.Host) (DialInfo, error) {
	t.Helper()
	c, info, err := (&Dialer{Logger: dialLogger(t)}).Dial(context.Background(), h)
	if err == nil {
		c.Close()
	}
	return info, err
}

// Item 13: a @cert-authority line is a CA for the matching hosts, never a
// host's own key: a host under it that presents a plain key is new (recorded
// under accept-new, refused as unknown under yes), not "changed".
func TestHostKeyCertAuthorityIsNotHostKey(t *testing.T) {
	sshtest.NoAgent(t)
	ca := newSigner(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	sshtest.WriteFile(t, kh, caLine("*.corp", ca.PublicKey())+"\n")

	h := serverHost(t, s)
	h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
	h.HostKeyAlias = "web1.corp"
	h.StrictHostKeyChecking = sshconfig.StrictYes
	_, err := dialWith(t, h)
	var hke *HostKeyError
	if !errors.As(err, &hke) || hke.Kind != "unknown" {
		t.Fatalf("strict yes: err = %v, want an unknown-host HostKeyError", err)
	}

	h.StrictHostKeyChecking = sshconfig.StrictAcceptNew
	info, err := dialWith(t, h)
	if err != nil {
		t.Fatalf("accept-new: %v", err)
	}
	if info.HostKeyStatus != HostKeyTrustedNow {
		t.Errorf("status %q, want trusted_now", info.HostKeyStatus)
	}
	if got := keygenFind(t, "web1.corp", kh); !strings.Contains(got, keyField(s.HostKey)) {
		t.Errorf("ssh-keygen -F web1.corp finds %q, want the host key", got)
	}
	if info, err = dialWith(t, h); err != nil || info.HostKeyStatus != HostKeyKnown {
		t.Errorf("second dial: %v, status %q; want known", err, info.HostKeyStatus)
	}
}

// Item 14: host certificates are checked against @cert-authority lines; a
// certificate no CA vouches for counts as its plain key, as in OpenSSH, and
// only plain keys are ever written.
func TestHostKeyCertificate(t *testing.T) {
	sshtest.NoAgent(t)
	ca := newSigner(t)

	t.Run("trusted CA", func(t *testing.T) {
		s := sshtest.StartInProcess(t, sshtest.Options{HostCA: ca, HostCertPrincipals: []string{"web1.corp"}})
		kh := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "known_hosts"), caLine("*.corp", ca.PublicKey())+"\n")
		h := serverHost(t, s)
		h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
		h.HostKeyAlias = "web1.corp"
		h.StrictHostKeyChecking = sshconfig.StrictYes
		info, err := dialWith(t, h)
		if err != nil {
			t.Fatal(err)
		}
		if info.HostKeyStatus != HostKeyKnown || info.HostKeyFingerprint != ssh.FingerprintSHA256(s.HostKey) {
			t.Errorf("info = %+v, want known with %s", info, ssh.FingerprintSHA256(s.HostKey))
		}
	})

	// No CA for the host: the certificate's key is what is checked and recorded.
	for _, existing := range []bool{true, false} {
		name := "new host, no file"
		if existing {
			name = "new host, file"
		}
		t.Run(name, func(t *testing.T) {
			s := sshtest.StartInProcess(t, sshtest.Options{HostCA: ca})
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if existing {
				sshtest.WriteFile(t, kh, knownhosts.Line([]string{"elsewhere"}, probeKey)+"\n")
			}
			h := serverHost(t, s)
			h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
			h.StrictHostKeyChecking = sshconfig.StrictAcceptNew
			info, err := dialWith(t, h)
			if err != nil {
				t.Fatal(err)
			}
			if info.HostKeyStatus != HostKeyTrustedNow || info.HostKeyFingerprint != ssh.FingerprintSHA256(s.HostKey) {
				t.Errorf("info = %+v, want trusted_now with %s", info, ssh.FingerprintSHA256(s.HostKey))
			}
			b, _ := os.ReadFile(kh)
			if strings.Contains(string(b), "cert") {
				t.Errorf("a certificate was written: %q", b)
			}
			name := knownhosts.Normalize(s.Addr())
			if got := keygenFind(t, name, kh); !strings.Contains(got, keyField(s.HostKey)) {
				t.Errorf("ssh-keygen -F %s finds %q, want the plain host key", name, got)
			}
			if info, err := dialWith(t, h); err != nil || info.HostKeyStatus != HostKeyKnown {
				t.Errorf("second dial: %v, status %q; want known", err, info.HostKeyStatus)
			}
		})
	}

	// A CA that does not vouch for this name: the plain key decides.
	t.Run("wrong principal, key known", func(t *testing.T) {
		s := sshtest.StartInProcess(t, sshtest.Options{HostCA: ca, HostCertPrincipals: []string{"other.corp"}})
		kh := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "known_hosts"),
			caLine("*", ca.PublicKey())+"\n"+sshtest.KnownHostsLine(s, s.HostKey)+"\n")
		h := serverHost(t, s)
		h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
		h.StrictHostKeyChecking = sshconfig.StrictYes
		info, err := dialWith(t, h)
		if err != nil || info.HostKeyStatus != HostKeyKnown {
			t.Fatalf("%v, status %q; want known", err, info.HostKeyStatus)
		}
	})

	t.Run("wrong principal, key unknown", func(t *testing.T) {
		s := sshtest.StartInProcess(t, sshtest.Options{HostCA: ca, HostCertPrincipals: []string{"other.corp"}})
		kh := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "known_hosts"), caLine("*", ca.PublicKey())+"\n")
		h := serverHost(t, s)
		h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
		h.StrictHostKeyChecking = sshconfig.StrictYes
		_, err := dialWith(t, h)
		var hke *HostKeyError
		if !errors.As(err, &hke) || hke.Kind != "unknown" || !strings.Contains(err.Error(), "certificate was not accepted") {
			t.Fatalf("err = %v, want an unknown-host HostKeyError saying why the certificate was not taken", err)
		}
	})

	// A certificate on a plain line, as sshjobs wrote before: its key is known.
	t.Run("certificate line of old versions", func(t *testing.T) {
		s := sshtest.StartInProcess(t, sshtest.Options{HostCA: ca})
		kh := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "known_hosts"), sshtest.KnownHostsLine(s, s.HostCert)+"\n")
		h := serverHost(t, s)
		h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
		h.StrictHostKeyChecking = sshconfig.StrictYes
		if info, err := dialWith(t, h); err != nil || info.HostKeyStatus != HostKeyKnown {
			t.Fatalf("%v, status %q; want known", err, info.HostKeyStatus)
		}
	})

	t.Run("certificate of a changed key", func(t *testing.T) {
		s := sshtest.StartInProcess(t, sshtest.Options{HostCA: ca})
		other := newSigner(t).PublicKey()
		kh := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "known_hosts"), sshtest.KnownHostsLine(s, other)+"\n")
		h := serverHost(t, s)
		h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
		h.StrictHostKeyChecking = sshconfig.StrictAcceptNew
		_, err := dialWith(t, h)
		var hke *HostKeyError
		if !errors.As(err, &hke) || hke.Kind != "changed" {
			t.Fatalf("err = %v, want a changed-key HostKeyError", err)
		}
		for _, want := range []string{ssh.FingerprintSHA256(s.HostKey), ssh.FingerprintSHA256(other)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message lacks %q: %v", want, err)
			}
		}
	})

	for _, tc := range []struct {
		name    string
		revoked func(s *sshtest.Server) ssh.PublicKey
	}{
		{"revoked CA", func(*sshtest.Server) ssh.PublicKey { return ca.PublicKey() }},
		{"revoked host key", func(s *sshtest.Server) ssh.PublicKey { return s.HostKey }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sshtest.StartInProcess(t, sshtest.Options{HostCA: ca})
			kh := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "known_hosts"),
				caLine("*", ca.PublicKey())+"\n"+revokedLine(tc.revoked(s))+"\n")
			h := serverHost(t, s)
			h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
			h.StrictHostKeyChecking = sshconfig.StrictAcceptNew
			_, err := dialWith(t, h)
			var hke *HostKeyError
			if !errors.As(err, &hke) || hke.Kind != "revoked" {
				t.Fatalf("err = %v, want a revoked HostKeyError", err)
			}
			if b, _ := os.ReadFile(kh); strings.Count(string(b), "\n") != 2 {
				t.Errorf("known_hosts was modified: %q", b)
			}
		})
	}
}

// Item 14 against a real sshd with HostCertificate: trusted through the CA,
// and, with no known_hosts, the plain key is recorded in a file the OpenSSH
// client then accepts.
func TestHostKeyCertificateOpenSSH(t *testing.T) {
	sshtest.NoAgent(t)
	ca := newSigner(t)
	s := sshtest.StartOpenSSH(t, sshtest.Options{HostCA: ca, HostCertPrincipals: []string{"web1.corp"}})

	kh := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "known_hosts"), caLine("*.corp", ca.PublicKey())+"\n")
	h := serverHost(t, s)
	h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
	h.HostKeyAlias = "web1.corp"
	h.StrictHostKeyChecking = sshconfig.StrictYes
	info, err := dialWith(t, h)
	if err != nil || info.HostKeyStatus != HostKeyKnown {
		t.Fatalf("CA: %v, status %q; want known", err, info.HostKeyStatus)
	}

	h.HostKeyAlias = ""
	kh2 := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	h.UserKnownHostsFiles = []string{kh2}
	h.StrictHostKeyChecking = sshconfig.StrictAcceptNew
	if info, err := dialWith(t, h); err != nil || info.HostKeyStatus != HostKeyTrustedNow {
		t.Fatalf("no file: %v, status %q; want trusted_now", err, info.HostKeyStatus)
	}
	b, _ := os.ReadFile(kh2)
	if string(b) != sshtest.KnownHostsLine(s, s.HostKey)+"\n" {
		t.Errorf("known_hosts = %q, want the plain key line", b)
	}
	sshPath, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no OpenSSH client")
	}
	out, err := exec.Command(sshPath, "-F", "none", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+kh2, "-o", "GlobalKnownHostsFile=none", "-o", "IdentityAgent=none",
		"-i", s.KeyFile, "-p", strconv.Itoa(s.Port), "-l", s.User, s.Host, "echo", "ok").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Errorf("OpenSSH with the recorded file: %v: %s", err, out)
	}
}

// Item 15: at record time the file is read again under a lock; a key another
// process recorded meanwhile decides: the same key is known, another one is
// a changed key, and nothing is appended.
func TestKnownHostsRecordRace(t *testing.T) {
	s := sshtest.StartInProcess(t, sshtest.Options{})
	other := newSigner(t).PublicKey()
	setup := func(t *testing.T) (*hostKeyCheck, string) {
		kh := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "known_hosts"), knownhosts.Line([]string{"elsewhere"}, probeKey)+"\n")
		h := &sshconfig.Host{HostName: s.Host, Port: s.Port, User: "u", UserKnownHostsFiles: []string{kh},
			StrictHostKeyChecking: sshconfig.StrictAcceptNew}
		hk, err := newHostKeyCheck(h)
		if err != nil {
			t.Fatal(err)
		}
		return hk, kh
	}
	appendLine := func(t *testing.T, kh, line string) {
		f, err := os.OpenFile(kh, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	checkChanged := func(t *testing.T, err error, kh string) {
		var hke *HostKeyError
		if !errors.As(err, &hke) || hke.Kind != "changed" {
			t.Fatalf("err = %v, want a changed-key HostKeyError", err)
		}
		for _, want := range []string{ssh.FingerprintSHA256(s.HostKey), ssh.FingerprintSHA256(other)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message lacks %q: %v", want, err)
			}
		}
		if b, _ := os.ReadFile(kh); strings.Count(string(b), "\n") != 2 {
			t.Errorf("known_hosts = %q, want nothing appended", b)
		}
	}

	t.Run("other key", func(t *testing.T) {
		hk, kh := setup(t)
		appendLine(t, kh, sshtest.KnownHostsLine(s, other)) // another process, after our read
		checkChanged(t, hk.callback("", nil, s.HostKey), kh)
	})
	t.Run("same key", func(t *testing.T) {
		hk, kh := setup(t)
		appendLine(t, kh, sshtest.KnownHostsLine(s, s.HostKey))
		if err := hk.callback("", nil, s.HostKey); err != nil {
			t.Fatal(err)
		}
		if _, st := hk.result(); st != HostKeyKnown {
			t.Errorf("status %q, want known", st)
		}
		if b, _ := os.ReadFile(kh); strings.Count(string(b), "\n") != 2 {
			t.Errorf("known_hosts = %q, want nothing appended", b)
		}
	})
	// Another process holds the lock (flock on the file, from its own open
	// file description) while it writes: the record waits for it.
	t.Run("waits for the lock", func(t *testing.T) {
		hk, kh := setup(t)
		f, err := os.OpenFile(kh, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- hk.callback("", nil, s.HostKey) }()
		select {
		case err := <-done:
			t.Fatalf("recorded while another process held the lock (err %v)", err)
		case <-time.After(300 * time.Millisecond):
		}
		appendLine(t, kh, sshtest.KnownHostsLine(s, other))
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		select {
		case err := <-done:
			checkChanged(t, err, kh)
		case <-time.After(10 * time.Second):
			t.Fatal("record still blocked after the lock was released")
		}
	})
}

// Item 16: with HashKnownHosts, new entries are hashed (OpenSSH finds them
// with ssh-keygen -F), and hashed entries, ours or ssh-keygen -H's, match.
func TestKnownHostsHashed(t *testing.T) {
	sshtest.NoAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	for _, alias := range []string{"", "hashed.example"} {
		t.Run("alias="+alias, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			h := serverHost(t, s)
			h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
			h.StrictHostKeyChecking = sshconfig.StrictAcceptNew
			h.HashKnownHosts = true
			h.HostKeyAlias = alias
			name := cmp.Or(alias, knownhosts.Normalize(s.Addr()))
			info, err := dialWith(t, h)
			if err != nil || info.HostKeyStatus != HostKeyTrustedNow {
				t.Fatalf("%v, status %q; want trusted_now", err, info.HostKeyStatus)
			}
			b, _ := os.ReadFile(kh)
			if !strings.HasPrefix(string(b), "|1|") || strings.Contains(string(b), name) || strings.Count(string(b), "\n") != 1 {
				t.Errorf("known_hosts = %q, want one hashed line", b)
			}
			if got := keygenFind(t, name, kh); !strings.Contains(got, keyField(s.HostKey)) {
				t.Errorf("ssh-keygen -F %s finds %q, want the host key", name, got)
			}
			if info, err := dialWith(t, h); err != nil || info.HostKeyStatus != HostKeyKnown {
				t.Errorf("second dial: %v, status %q; want known", err, info.HostKeyStatus)
			}
		})
	}
	t.Run("plain", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		h := serverHost(t, s)
		h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
		h.StrictHostKeyChecking = sshconfig.StrictAcceptNew
		if _, err := dialWith(t, h); err != nil {
			t.Fatal(err)
		}
		name := knownhosts.Normalize(s.Addr())
		if b, _ := os.ReadFile(kh); !strings.HasPrefix(string(b), name+" ") {
			t.Errorf("known_hosts = %q, want a plain line", b)
		}
		if got := keygenFind(t, name, kh); !strings.Contains(got, keyField(s.HostKey)) {
			t.Errorf("ssh-keygen -F %s finds %q, want the host key", name, got)
		}
	})
	t.Run("hashed by ssh-keygen -H", func(t *testing.T) {
		kh := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "known_hosts"), sshtest.KnownHostsLine(s, s.HostKey)+"\n")
		if out, err := exec.Command("ssh-keygen", "-H", "-f", kh).CombinedOutput(); err != nil {
			t.Skipf("ssh-keygen -H: %v: %s", err, out)
		}
		h := serverHost(t, s)
		h.UserKnownHostsFiles, h.GlobalKnownHostsFiles = []string{kh}, nil
		h.StrictHostKeyChecking = sshconfig.StrictYes
		if info, err := dialWith(t, h); err != nil || info.HostKeyStatus != HostKeyKnown {
			t.Errorf("%v, status %q; want known", err, info.HostKeyStatus)
		}
	})
}

// HashKnownHosts is read by both resolution paths.
func TestResolveHashKnownHosts(t *testing.T) {
	cfg := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "config"), "Host hashed\n  HashKnownHosts yes\nHost plain\n  HashKnownHosts no\n")
	for _, noOpenSSH := range []bool{false, true} {
		r := &sshconfig.Resolver{ConfigFile: cfg, NoOpenSSH: noOpenSSH}
		for alias, want := range map[string]bool{"hashed": true, "plain": false} {
			h, err := r.Resolve(context.Background(), alias)
			if err != nil {
				t.Fatal(err)
			}
			if h.HashKnownHosts != want {
				t.Errorf("NoOpenSSH=%v %s: HashKnownHosts %v, want %v", noOpenSSH, alias, h.HashKnownHosts, want)
			}
		}
	}
}

// probeKey is a key no server here has.
var probeKey = func() ssh.PublicKey {
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
}()

// Host fields match as in OpenSSH: whole-name wildcards, negation vetoes,
// case ignored, "[host]:port" for other ports, hashed names.
func TestKnownHostsMatch(t *testing.T) {
	hashed := knownhosts.HashHostname("[10.0.0.1]:2222")
	for _, tc := range []struct {
		patterns, name string
		want           bool
	}{
		{"web1.corp", "web1.corp", true},
		{"WEB1.Corp", "web1.corp", true},
		{"*.corp", "web1.corp", true},
		{"*.corp", "corp", false},
		{"*.corp", "[web1.corp]:2222", false},
		{"[*.corp]:*", "[web1.corp]:2222", true},
		{"web?.corp", "web1.corp", true},
		{"web?.corp", "web12.corp", false},
		{"*.corp,!db.corp", "db.corp", false},
		{"!db.corp,*.corp", "web.corp", true},
		{"!db.corp", "web.corp", false},
		{"a,b,c", "b", true},
		{"10.0.0.1", "[10.0.0.1]:2222", false},
		{hashed, "[10.0.0.1]:2222", true},
		{hashed, "10.0.0.1", false},
		{"|1|bad", "10.0.0.1", false},
	} {
		if got := matchKnownHost(tc.patterns, tc.name); got != tc.want {
			t.Errorf("matchKnownHost(%q, %q) = %v, want %v", tc.patterns, tc.name, got, tc.want)
		}
	}
}

// A tab-separated known_hosts line counts as OpenSSH counts it: the host is
// known, and a revocation in such a line holds (review finding: both were
// skipped).
func TestKnownHostsTabSeparated(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	k := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	kt := strings.Replace(k, " ", "\t", 1)
	db := &knownHostsDB{}
	db.parse([]byte("web1\t"+kt+"\n@revoked\t*\t"+kt+"\n"), "known_hosts")
	if got := db.hostKeys("web1"); len(got) != 1 || !sameKey(got[0].Key, key) {
		t.Errorf("host keys of web1: %v; want the tab-separated entry", got)
	}
	if db.revoked(key) == nil {
		t.Error("the tab-separated @revoked line was skipped")
	}
}
