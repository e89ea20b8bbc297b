package stepup

import (
	"slices"
	"strings"
)

// Scopes is a set of OAuth scope values (RFC 6749 §3.3) that keeps the order
// in which its members were first added, so that the scope parameters stepup
// builds are stable. Scope values are case-sensitive; order carries no
// meaning: compare with [Scopes.Equal].
type Scopes []string

// ParseScopes parses a space-delimited scope string (RFC 6749 §3.3),
// dropping duplicates and tolerating repeated, leading or trailing spaces. A
// scope value with a byte outside %x21 / %x23-5B / %x5D-7E is an error
// (RFC 6750 §3): no scope guessed from such a value is ever requested.
func ParseScopes(s string) (Scopes, error) {
	var out Scopes
	for _, v := range strings.Split(s, " ") {
		if v == "" {
			continue
		}
		for i := 0; i < len(v); i++ {
			if !isScopeChar(v[i]) {
				return nil, &paramError{Param: "scope", Reason: "character outside RFC 6749 §3.3 set"}
			}
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// isScopeChar: %x21 / %x23-5B / %x5D-7E.
func isScopeChar(c byte) bool { return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\' }

// String returns the scopes space-delimited, in order, as a scope parameter.
func (s Scopes) String() string { return strings.Join(s, " ") }

// Contains reports whether scope is in the set.
func (s Scopes) Contains(scope string) bool { return slices.Contains(s, scope) }

// ContainsAll reports whether every member of other is in s.
func (s Scopes) ContainsAll(other Scopes) bool {
	for _, v := range other {
		if !s.Contains(v) {
			return false
		}
	}
	return true
}

// Equal reports whether s and other hold the same scopes, in any order.
func (s Scopes) Equal(other Scopes) bool {
	return len(s) == len(other) && s.ContainsAll(other) && other.ContainsAll(s)
}

// Union returns a new set with the members of s followed by those of each of
// sets not already present, in order. Neither s nor sets are modified.
func (s Scopes) Union(sets ...Scopes) Scopes {
	n := len(s)
	for _, o := range sets {
		n += len(o)
	}
	out := make(Scopes, 0, n)
	for _, v := range s {
		if !out.Contains(v) {
			out = append(out, v)
		}
	}
	for _, o := range sets {
		for _, v := range o {
			if !out.Contains(v) {
				out = append(out, v)
			}
		}
	}
	return out
}

// sortedKey returns the set's members sorted and space-joined: the same
// string for every order of the same set.
func (s Scopes) sortedKey() string {
	c := slices.Clone(s)
	slices.Sort(c)
	c = slices.Compact(c)
	return strings.Join(c, " ")
}
