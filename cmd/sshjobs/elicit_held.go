package main

import (
	"context"
	"sync"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// heldTTL is how long a secret typed on an elicitation page stays in memory
// for its destination. Long enough for the job the call submitted to reach
// it (it may wait behind its session's earlier jobs, and sudo asks when the
// command starts); then it is dropped, and the next need asks again. A
// variable so that a test can see it go.
var heldTTL = 10 * time.Minute

// heldSecrets are the secrets people typed on elicitation pages, by
// destination (Host.Key) and kind, in this process's memory only: the third
// source of secrets, after the credential store and the environment
// (openApp). A job of this process finds them the way it finds stored ones;
// a job adopted by another process does not.
type heldSecrets struct {
	mu sync.Mutex // protects m
	m  map[heldKey]*heldSecret
}

type heldKey struct {
	host string // Host.Key
	kind sshdial.SecretKind
}

type heldSecret struct {
	value string
	// declined: the person declined the page (decline): not asked again
	// while held; no value.
	declined bool
	timer    *time.Timer
}

// put holds value for host and kind for heldTTL, replacing an earlier one.
func (s *heldSecrets) put(host string, kind sshdial.SecretKind, value string) {
	s.hold(host, kind, &heldSecret{value: value})
}

// decline holds, for heldTTL, that the person would not give the secret of
// kind for host: a secret that is not required (the enable secret) is then
// not asked for again meanwhile.
func (s *heldSecrets) decline(host string, kind sshdial.SecretKind) {
	s.hold(host, kind, &heldSecret{declined: true})
}

// declined reports whether decline holds for host and kind.
func (s *heldSecrets) declined(host string, kind sshdial.SecretKind) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := s.m[heldKey{host, kind}]
	return hs != nil && hs.declined
}

func (s *heldSecrets) hold(host string, kind sshdial.SecretKind, hs *heldSecret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[heldKey]*heldSecret{}
	}
	k := heldKey{host, kind}
	if old := s.m[k]; old != nil {
		old.timer.Stop()
	}
	hs.timer = time.AfterFunc(heldTTL, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.m[k] == hs {
			delete(s.m, k)
		}
	})
	s.m[k] = hs
}

// drop forgets the secret of kind for host (it did not work).
func (s *heldSecrets) drop(host string, kind sshdial.SecretKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hs := s.m[heldKey{host, kind}]; hs != nil {
		hs.timer.Stop()
		delete(s.m, heldKey{host, kind})
	}
}

// Secret implements sshdial.Secrets.
func (s *heldSecrets) Secret(_ context.Context, h *sshconfig.Host, kind sshdial.SecretKind) (string, bool, error) {
	if h == nil {
		return "", false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if hs := s.m[heldKey{h.Key(), kind}]; hs != nil && !hs.declined {
		return hs.value, true, nil
	}
	return "", false, nil
}
