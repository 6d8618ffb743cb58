package credstore

import (
	"context"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// HostID is the store's name for a destination: user@hostname:port, without
// the route hash of Host.Key (a secret belongs to the account, whichever way
// it is reached).
func HostID(h *sshconfig.Host) string { return h.User + "@" + h.Addr() }

// Secret implements sshdial.Secrets: the row saved for h's
// user@hostname:port. The alias a row was saved under names it in lists and
// deletes only: when the alias later leads elsewhere, the new destination
// does not get the old one's secret.
func (s *Store) Secret(ctx context.Context, h *sshconfig.Host, kind sshdial.SecretKind) (string, bool, error) {
	if h == nil || !ValidKind(kind) {
		return "", false, nil
	}
	v, ok, err := s.Get(ctx, HostID(h), kind)
	if err != nil || !ok {
		return "", false, err
	}
	out := string(v)
	clear(v)
	return out, true, nil
}
