package sessions

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestHostKeyAcceptNewRecords(t *testing.T) {
	noAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	h := serverHost(t, s)
	// A folder that does not exist yet, as ~/.ssh on a fresh machine.
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	h.UserKnownHostsFiles = []string{kh}
	h.GlobalKnownHostsFiles = nil
	h.StrictHostKeyChecking = StrictAcceptNew
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
	want := knownHostsLine(s, s.HostKey) + "\n"
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
	writeFile(t, kh2, "# no newline at the end")
	h.UserKnownHostsFiles = []string{kh2}
	h.StrictHostKeyChecking = StrictNo
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
	noAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	h := serverHost(t, s)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	h.UserKnownHostsFiles = []string{kh}
	h.StrictHostKeyChecking = StrictYes

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
	noAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	other := sshtest.StartInProcess(t, sshtest.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	// s's address with other's key: as if s had been reinstalled.
	writeFile(t, kh, "# line 1\n"+knownHostsLine(s, other.HostKey)+"\n")

	for _, strict := range []string{StrictYes, StrictAcceptNew, StrictNo} {
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
	writeFile(t, kh, knownHostsLine(s, rsaPub)+"\n"+knownHostsLine(s, s.HostKey)+"\n"+
		knownhosts.Line([]string{"elsewhere"}, probeKey)+"\n")
	h := &Host{HostName: s.Host, Port: s.Port, UserKnownHostsFiles: []string{kh}}
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
