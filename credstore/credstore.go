// Package credstore is the encrypted credential store: per-host secrets
// (password, private key, key passphrase, sudo and enable passwords) kept in
// the database as AES-256-GCM ciphertexts under a key derived from the master
// password with Argon2id.
//
// Each value is sealed with a fresh random nonce and the row's host and kind as
// additional data, so a value copied to another row does not open. The key
// row holds the KDF parameters, a version and a random salt per database, and
// a verifier (a sealed fixed text), so a wrong master password is reported at
// once instead of as a failure to decrypt some value later.
//
// Storage is the database side (sqlstore implements it); the store does the
// cryptography and never hands a value to anything but its caller.
package credstore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshdial"
	"golang.org/x/crypto/argon2"
)

// Version is the format of the key row and of the values this code writes.
const Version = 1

// KDFArgon2id is the only key derivation function.
const KDFArgon2id = "argon2id"

// Kinds are the kinds of secret the store keeps, in the order lists show them.
var Kinds = []sshdial.SecretKind{
	sshdial.SecretPassword, sshdial.SecretPrivateKey, sshdial.SecretPassphrase,
	sshdial.SecretSudo, sshdial.SecretEnable,
}

// ValidKind reports whether k is one of Kinds.
func ValidKind(k sshdial.SecretKind) bool { return slices.Contains(Kinds, k) }

// EnvMaster and EnvMasterSeed name the variables the master password is read
// from (the second is the seed projects' name).
const (
	EnvMaster     = "SSHJOBS_MASTER_PASSWORD"
	EnvMasterSeed = "MCP_SSH_MASTER_PASSWORD"
)

// Errors a caller may test for.
var (
	// ErrWrongMaster: the master password does not open this database's store.
	ErrWrongMaster = errors.New("wrong master password")
	// ErrNoMaster: no master password was given, so nothing can be saved.
	ErrNoMaster = errors.New("the credential store is not enabled: set " + EnvMaster +
		" (the master password) in sshjobs' environment, or run `sshjobs secret set HOST`, which asks for it")
	// ErrMasterChanged: the master password was changed (sshjobs secret
	// passwd) by another process since this one derived its key.
	ErrMasterChanged = errors.New("the master password was changed (sshjobs secret passwd) since this sshjobs started: " +
		"restart it with the new " + EnvMaster)
	// ErrTampered: a value does not open under its own row's host and kind.
	ErrTampered = errors.New("stored value does not decrypt (tampered with, or copied from another row)")
)

// Params are the Argon2id parameters for a new key row. Stored rows carry
// their own, so these can change without breaking an existing database.
type Params struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultParams follow RFC 9106's second recommended option (64 MiB, 3 passes),
// with 4 lanes. About 0.1-0.3 s once per process, only when the store is used.
var DefaultParams = Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// KeyRow is the stored key derivation and its verifier.
type KeyRow struct {
	Version   int
	KDF       string
	Salt      []byte
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
	Verifier  []byte // nonce || sealed verifierText
	CreatedAt time.Time
}

// Row is one stored secret.
type Row struct {
	Host      string // user@hostname:port
	Alias     string // the alias the user named, "" if none
	Kind      sshdial.SecretKind
	Value     []byte // nonce || ciphertext; nil in List answers
	UpdatedAt time.Time
}

// Storage is the database side of the store.
type Storage interface {
	// CredentialKey returns the key row, or nil when there is none yet.
	CredentialKey(ctx context.Context) (*KeyRow, error)
	// InitCredentialKey stores k unless a key row exists already (another
	// process may have won the race), and returns the row in force.
	InitCredentialKey(ctx context.Context, k KeyRow) (*KeyRow, error)
	// PutCredential inserts or replaces the row of (Host, Kind), in one
	// transaction with a check that the key row's salt still is keySalt
	// (the key r.Value was sealed with); else it writes nothing and returns
	// ErrMasterChanged.
	PutCredential(ctx context.Context, r Row, keySalt []byte) error
	// FindCredential returns the row of kind for host, else nil. Only the
	// host's own row: a secret is used only for the destination it was saved
	// for, whatever its alias leads to now.
	FindCredential(ctx context.Context, host string, kind sshdial.SecretKind) (*Row, error)
	// ListCredentials returns every row without its value, by host and kind.
	ListCredentials(ctx context.Context) ([]Row, error)
	// DeleteCredentials deletes the rows whose host or alias is host; only of
	// kind when kind is not "". It returns how many went.
	DeleteCredentials(ctx context.Context, host string, kind sshdial.SecretKind) (int, error)
	// Rekey runs f on the key row and all rows in one write transaction and
	// stores what it returns in their place (values are matched by host
	// and kind).
	Rekey(ctx context.Context, f func(old *KeyRow, rows []Row) (KeyRow, []Row, error)) error
}

// verifierText is sealed into the key row; opening it proves the password.
const verifierText = "sshjobs credential store verifier v1"

// Store encrypts and decrypts secrets over a Storage. It is safe for
// concurrent use. The master password is kept only until the key is derived.
type Store struct {
	st     Storage
	params Params

	mu     sync.Mutex
	master []byte      // until the key is derived; nil after (or when none was given)
	aead   cipher.AEAD // nil until unlocked
	salt   []byte      // of the key row aead belongs to
	err    error       // a failed unlock, kept: a wrong password stays wrong
	has    bool        // a master password was given
}

// New returns a store over st. An empty master password leaves the store
// disabled: lookups find nothing and saving returns ErrNoMaster.
func New(st Storage, master string, p Params) *Store {
	if p == (Params{}) {
		p = DefaultParams
	}
	s := &Store{st: st, params: p, has: master != ""}
	if master != "" {
		s.master = []byte(master)
	}
	return s
}

// Enabled reports whether a master password was given.
func (s *Store) Enabled() bool { return s.has }

// unlock derives the key (creating the key row on first use when create is
// set) and checks it against the verifier. It returns (nil, nil) when there
// is no key row and create is false.
func (s *Store) unlock(ctx context.Context, create bool) (cipher.AEAD, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.has {
		return nil, ErrNoMaster
	}
	if s.aead != nil || s.err != nil {
		return s.aead, s.err
	}
	k, err := s.st.CredentialKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("credential store: read key row: %w", err)
	}
	if k == nil {
		if !create {
			return nil, nil
		}
		nk, aead, err := newKeyRow(s.master, s.params)
		if err != nil {
			return nil, err
		}
		if k, err = s.st.InitCredentialKey(ctx, nk); err != nil {
			return nil, fmt.Errorf("credential store: create key row: %w", err)
		}
		if bytes.Equal(k.Salt, nk.Salt) {
			s.setKey(aead, k.Salt)
			return aead, nil
		}
		// Another process created the row first: use its.
	}
	aead, err := openKeyRow(k, s.master)
	if err != nil {
		if errors.Is(err, ErrWrongMaster) {
			s.err = fmt.Errorf("credential store: %w (%s does not open this database's store; "+
				"the store was created with another one)", ErrWrongMaster, EnvMaster)
			clear(s.master)
			s.master = nil
		}
		return nil, err
	}
	s.setKey(aead, k.Salt)
	return aead, nil
}

func (s *Store) setKey(aead cipher.AEAD, salt []byte) {
	s.aead, s.salt = aead, salt
	clear(s.master) // only the derived key is needed from here on
	s.master = nil
}

// newKeyRow makes a key row with a fresh salt for master.
func newKeyRow(master []byte, p Params) (KeyRow, cipher.AEAD, error) {
	k := KeyRow{Version: Version, KDF: KDFArgon2id, Salt: make([]byte, 16),
		Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads, CreatedAt: time.Now()}
	rand.Read(k.Salt)
	aead, err := deriveAEAD(master, &k)
	if err != nil {
		return k, nil, err
	}
	k.Verifier = seal(aead, []byte(verifierText), verifierAAD())
	return k, aead, nil
}

// openKeyRow derives the key of k from master and checks the verifier.
func openKeyRow(k *KeyRow, master []byte) (cipher.AEAD, error) {
	if k.Version != Version || k.KDF != KDFArgon2id {
		return nil, fmt.Errorf("credential store: key row version %d (%s) is not one this sshjobs reads (version %d, %s)",
			k.Version, k.KDF, Version, KDFArgon2id)
	}
	aead, err := deriveAEAD(master, k)
	if err != nil {
		return nil, err
	}
	if v, err := open(aead, k.Verifier, verifierAAD()); err != nil || string(v) != verifierText {
		return nil, fmt.Errorf("credential store: %w", ErrWrongMaster)
	}
	return aead, nil
}

func deriveAEAD(master []byte, k *KeyRow) (cipher.AEAD, error) {
	// Bounds keep a damaged or hostile row from asking for absurd work.
	if k.Time < 1 || k.Time > 64 || k.MemoryKiB < 8 || k.MemoryKiB > 4<<20 || k.Threads < 1 || len(k.Salt) < 16 {
		return nil, fmt.Errorf("credential store: key row parameters out of range (time %d, memory %d KiB, threads %d, salt %d bytes)",
			k.Time, k.MemoryKiB, k.Threads, len(k.Salt))
	}
	key := argon2.IDKey(master, k.Salt, k.Time, k.MemoryKiB, k.Threads, 32)
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("credential store: %w", err)
	}
	return cipher.NewGCM(block)
}

// valueAAD binds a value to its row. The version and NUL separators keep
// ("a", "bc") and ("ab", "c") apart.
func valueAAD(host string, kind sshdial.SecretKind) []byte {
	return []byte(fmt.Sprintf("sshjobs credential v%d\x00%s\x00%s", Version, host, kind))
}

func verifierAAD() []byte { return []byte(fmt.Sprintf("sshjobs credential verifier v%d", Version)) }

func seal(aead cipher.AEAD, plain, aad []byte) []byte {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, aad)
}

func open(aead cipher.AEAD, box, aad []byte) ([]byte, error) {
	if len(box) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrTampered
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, box[:n], box[n:], aad)
	if err != nil {
		return nil, ErrTampered
	}
	return plain, nil
}

// Put stores value as the secret of kind for host (user@hostname:port),
// remembering alias (may be "") for lookups by the name the user gave.
func (s *Store) Put(ctx context.Context, host, alias string, kind sshdial.SecretKind, value []byte) error {
	if !ValidKind(kind) {
		return fmt.Errorf("credential store: unknown kind %q (want one of %s)", kind, kindList())
	}
	if host == "" || len(value) == 0 {
		return fmt.Errorf("credential store: save %s for %q: empty host or value", kind, host)
	}
	aead, err := s.unlock(ctx, true)
	if err != nil {
		return err
	}
	s.mu.Lock()
	salt := s.salt
	s.mu.Unlock()
	r := Row{Host: host, Alias: alias, Kind: kind, Value: seal(aead, value, valueAAD(host, kind)), UpdatedAt: time.Now()}
	if err := s.st.PutCredential(ctx, r, salt); err != nil {
		if errors.Is(err, ErrMasterChanged) {
			return s.stale(salt)
		}
		return fmt.Errorf("credential store: save %s for %s: %w", kind, host, err)
	}
	return nil
}

// Get returns the secret of kind for host (user@hostname:port): only a
// row saved for that destination. A disabled store, or one with no such row, finds nothing
// without deriving the key; a wrong master password is an error only when a
// row would have been used.
func (s *Store) Get(ctx context.Context, host string, kind sshdial.SecretKind) ([]byte, bool, error) {
	if !s.has {
		return nil, false, nil
	}
	r, err := s.st.FindCredential(ctx, host, kind)
	if err != nil {
		return nil, false, fmt.Errorf("credential store: look up %s for %s: %w", kind, host, err)
	}
	if r == nil {
		return nil, false, nil
	}
	aead, err := s.unlock(ctx, false)
	if err != nil {
		return nil, false, err
	}
	if aead == nil {
		return nil, false, fmt.Errorf("credential store: %s for %s is stored but the key row is missing", kind, r.Host)
	}
	v, err := open(aead, r.Value, valueAAD(r.Host, r.Kind))
	if err != nil {
		// A value that does not open under our key: if the key row is no
		// longer ours, another process changed the master password, and
		// that (not tampering) is what to report.
		s.mu.Lock()
		salt := s.salt
		s.mu.Unlock()
		if k, kerr := s.st.CredentialKey(ctx); kerr == nil && k != nil && !bytes.Equal(k.Salt, salt) {
			return nil, false, s.stale(salt)
		}
		return nil, false, fmt.Errorf("credential store: %s for %s: %w", kind, r.Host, err)
	}
	return v, true, nil
}

// stale forgets the key derived for the key row of salt, which another
// process replaced (ChangeMaster): every later use reports ErrMasterChanged
// at once. The new master password is not known here: the process must be
// restarted with it.
func (s *Store) stale(salt []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Equal(s.salt, salt) {
		s.aead, s.salt = nil, nil
		s.err = fmt.Errorf("credential store: %w", ErrMasterChanged)
	}
	if s.err != nil {
		return s.err
	}
	return fmt.Errorf("credential store: %w", ErrMasterChanged)
}

// List returns the rows without values. It needs no master password.
func (s *Store) List(ctx context.Context) ([]Row, error) {
	rows, err := s.st.ListCredentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("credential store: list: %w", err)
	}
	for i := range rows {
		rows[i].Value = nil
	}
	return rows, nil
}

// Delete removes host's secrets (host or alias), only of kind when not "".
// It needs no master password: forgetting is always allowed.
func (s *Store) Delete(ctx context.Context, host string, kind sshdial.SecretKind) (int, error) {
	if kind != "" && !ValidKind(kind) {
		return 0, fmt.Errorf("credential store: unknown kind %q (want one of %s)", kind, kindList())
	}
	n, err := s.st.DeleteCredentials(ctx, host, kind)
	if err != nil {
		return 0, fmt.Errorf("credential store: delete %s: %w", host, err)
	}
	return n, nil
}

// ChangeMaster re-encrypts every value under a key from newMaster, with a new
// salt and the current Params, in one transaction: either all values move to
// the new key or none does. The store must open with its current password.
func (s *Store) ChangeMaster(ctx context.Context, newMaster string) error {
	if newMaster == "" {
		return errors.New("credential store: the new master password is empty")
	}
	oldAEAD, err := s.unlock(ctx, true)
	if err != nil {
		return err
	}
	s.mu.Lock()
	oldSalt := s.salt
	s.mu.Unlock()
	nk, newAEAD, err := newKeyRow([]byte(newMaster), s.params)
	if err != nil {
		return err
	}
	err = s.st.Rekey(ctx, func(old *KeyRow, rows []Row) (KeyRow, []Row, error) {
		if old == nil || !bytes.Equal(old.Salt, oldSalt) {
			return KeyRow{}, nil, errors.New("the key row changed meanwhile (another passwd?): run it again")
		}
		out := make([]Row, len(rows))
		for i, r := range rows {
			v, err := open(oldAEAD, r.Value, valueAAD(r.Host, r.Kind))
			if err != nil {
				return KeyRow{}, nil, fmt.Errorf("%s for %s: %w (delete it with `sshjobs secret rm %s --kind %s`)", r.Kind, r.Host, err, r.Host, r.Kind)
			}
			r.Value = seal(newAEAD, v, valueAAD(r.Host, r.Kind))
			clear(v)
			out[i] = r
		}
		return nk, out, nil
	})
	if err != nil {
		return fmt.Errorf("credential store: change master password: %w", err)
	}
	s.mu.Lock()
	s.aead, s.salt = newAEAD, nk.Salt
	s.mu.Unlock()
	return nil
}

func kindList() string {
	var b bytes.Buffer
	for i, k := range Kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(k))
	}
	return b.String()
}
