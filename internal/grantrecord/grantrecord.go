// Package grantrecord is the form in which stepup's stores keep a
// [stepup.SavedGrant] at rest, shared by the file store and the Redis store
// so that both read and write the same records.
//
// A record is a versioned JSON object. In the clear it names its key:
//
//	{"v":1,"resource":"https://mcp.example.com/mcp","issuer":"","grant":{"token":{...},"requested":[...],...}}
//
// Sealed with an AEAD it holds only the sealed grant:
//
//	{"v":1,"sealed":"<base64 of nonce ‖ ciphertext>"}
//
// where the ciphertext seals the grant's JSON with a random nonce and, as
// additional data, the version and the key (resource and issuer, each
// preceded by its length): a sealed record opens under its own key only,
// so one copied to another key's file or Redis entry is refused, as is one
// altered in any byte.
package grantrecord

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stepup-go/stepup"
)

// Version is the version of the records Encode writes, the only one Decode
// reads.
const Version = 1

// MaxSize bounds a record: Encode refuses to write a larger one and stores
// never read more. A grant is a few kilobytes even with large JWTs.
const MaxSize = 1 << 20

// ErrCorrupt says that a stored record cannot be used: it is not a record,
// was written by an unknown version, was altered, belongs to another key,
// or is sealed while the store has no AEAD (or the other way round). Its
// messages never contain a token.
var ErrCorrupt = errors.New("stored grant unusable")

// errNoToken refuses to save a grant that could not authorize anything.
var errNoToken = errors.New("a grant without access token cannot be saved (delete the key instead)")

// Codec encodes and decodes records. The zero value writes records in the
// clear.
type Codec struct {
	// AEAD, when not nil, seals every record written and is required to
	// read one: a record in the clear is then refused, so that whoever
	// can write to the store cannot plant a grant of their choosing.
	AEAD cipher.AEAD
}

// envelope is a record on the wire.
type envelope struct {
	V        int             `json:"v"`
	Resource *string         `json:"resource,omitempty"`
	Issuer   *string         `json:"issuer,omitempty"`
	Grant    json.RawMessage `json:"grant,omitempty"`
	Sealed   []byte          `json:"sealed,omitempty"`
}

// Encode returns the record of g, saved under key.
func (c Codec) Encode(key stepup.StoreKey, g *stepup.SavedGrant) ([]byte, error) {
	if g == nil || g.Token == nil || g.Token.AccessToken == "" {
		return nil, errNoToken
	}
	plain, err := json.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("encoding the grant: %w", err)
	}
	env := envelope{V: Version}
	if c.AEAD == nil {
		env.Resource, env.Issuer, env.Grant = &key.Resource, &key.Issuer, plain
	} else {
		nonce := make([]byte, c.AEAD.NonceSize(), c.AEAD.NonceSize()+len(plain)+c.AEAD.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("drawing a nonce: %w", err)
		}
		env.Sealed = c.AEAD.Seal(nonce, nonce, plain, additionalData(key))
	}
	rec, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encoding the record: %w", err)
	}
	if len(rec) > MaxSize {
		return nil, fmt.Errorf("the record is %d bytes, over the %d-byte limit", len(rec), MaxSize)
	}
	return rec, nil
}

// Decode returns the grant of rec, a record read from key's place. Every
// error wraps [ErrCorrupt].
func (c Codec) Decode(key stepup.StoreKey, rec []byte) (*stepup.SavedGrant, error) {
	if len(rec) > MaxSize {
		return nil, fmt.Errorf("%w: over %d bytes", ErrCorrupt, MaxSize)
	}
	var env envelope
	if err := json.Unmarshal(rec, &env); err != nil {
		// The JSON error is left out: its text can quote the record.
		return nil, fmt.Errorf("%w: not a JSON record", ErrCorrupt)
	}
	if env.V != Version {
		return nil, fmt.Errorf("%w: record version %d, this version reads %d", ErrCorrupt, env.V, Version)
	}
	plain := []byte(env.Grant)
	switch {
	case env.Sealed != nil && c.AEAD == nil:
		return nil, fmt.Errorf("%w: the record is sealed and the store has no AEAD", ErrCorrupt)
	case env.Sealed == nil && c.AEAD != nil:
		return nil, fmt.Errorf("%w: the record is not sealed and the store requires sealing", ErrCorrupt)
	case env.Sealed != nil:
		n := c.AEAD.NonceSize()
		if len(env.Sealed) < n {
			return nil, fmt.Errorf("%w: sealed record too short", ErrCorrupt)
		}
		var err error
		plain, err = c.AEAD.Open(nil, env.Sealed[:n], env.Sealed[n:], additionalData(key))
		if err != nil {
			return nil, fmt.Errorf("%w: the sealed record does not open under this key (altered, moved from another key, or sealed with another AEAD key)", ErrCorrupt)
		}
	default:
		if env.Resource == nil || env.Issuer == nil || *env.Resource != key.Resource || *env.Issuer != key.Issuer {
			return nil, fmt.Errorf("%w: the record belongs to another key", ErrCorrupt)
		}
	}
	var g stepup.SavedGrant
	if err := json.Unmarshal(plain, &g); err != nil {
		return nil, fmt.Errorf("%w: the grant is not valid JSON", ErrCorrupt)
	}
	if g.Token == nil || g.Token.AccessToken == "" {
		return nil, fmt.Errorf("%w: the grant has no access token", ErrCorrupt)
	}
	return &g, nil
}

// ID returns a name for key that is safe in a file name or a Redis key: the
// hex SHA-256 of its fields, so a resource URL never appears in a path and
// two keys never share a name.
func ID(key stepup.StoreKey) string {
	sum := sha256.Sum256(appendKey([]byte("stepup-store-key/1\x00"), key))
	return hex.EncodeToString(sum[:])
}

// additionalData binds a sealed record to its version and key.
func additionalData(key stepup.StoreKey) []byte {
	return appendKey([]byte("stepup-grant/1\x00"), key)
}

// appendKey appends the key's fields, each preceded by its length, so that
// no two keys give the same bytes.
func appendKey(b []byte, key stepup.StoreKey) []byte {
	b = binary.AppendUvarint(b, uint64(len(key.Resource)))
	b = append(b, key.Resource...)
	b = binary.AppendUvarint(b, uint64(len(key.Issuer)))
	return append(b, key.Issuer...)
}
