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

// Secret implements sshdial.Secrets: the row for h's user@hostname:port, else
// the row saved under h's alias, on the same terms as the OVRD_ variables:
// only when the alias alone lands on this destination (Host.SecretAlias).
func (s *Store) Secret(ctx context.Context, h *sshconfig.Host, kind sshdial.SecretKind) (string, bool, error) {
	if h == nil || !ValidKind(kind) {
		return "", false, nil
	}
	v, ok, err := s.Get(ctx, HostID(h), h.SecretAlias, kind)
	if err != nil || !ok {
		return "", false, err
	}
	out := string(v)
	clear(v)
	return out, true, nil
}
