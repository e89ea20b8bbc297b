package redisstore

import (
	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/internal/grantrecord"
)

// Names returns the Redis names of key's grant, lock and release channel,
// for tests that play another process or a stalled one.
func Names(s *Store, key stepup.StoreKey) (grant, lock, released string) {
	n := s.names(grantrecord.ID(key))
	return n.grant, n.lock, n.released
}
