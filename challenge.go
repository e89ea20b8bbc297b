package stepup

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// The grammar this file implements, from RFC 9110 §11 and §5.6:
//
//	WWW-Authenticate = #challenge                                   ; §11.6.1
//	challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]    ; §11.3
//	auth-scheme = token                                             ; §11.1
//	auth-param  = token BWS "=" BWS ( token / quoted-string )       ; §11.2
//	token68     = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//	token       = 1*tchar                                           ; §5.6.2
//	tchar       = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
//	              "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
//	quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE         ; §5.6.4
//	qdtext      = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
//	quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
//	OWS         = *( SP / HTAB ) ; BWS = OWS                        ; §5.6.3
//	#element    = [ element ] *( OWS "," OWS [ element ] )          ; §5.6.1.2
//
// Several field lines are one list joined by "," (RFC 9110 §5.3), so an
// auth-param at the start of a line continues the challenge the previous line
// ended with. A quoted-string never spans lines, and the recovery after a
// syntax error stops at the end of its line.

// Limits on a WWW-Authenticate header, which [ParseChallenges]
// documents. Real servers send a few hundred bytes and one or two
// challenges; these bounds are far above that and keep the work done on a
// hostile header small and linear in its size.
const (
	// maxChallengeHeaderBytes caps the total length of all field lines.
	maxChallengeHeaderBytes = 16 << 10
	// maxChallenges caps the challenges in one header.
	maxChallenges = 32
	// maxChallengeParams caps the auth-params of one challenge.
	maxChallengeParams = 32
	// maxEmptyListElements caps the empty list elements (",," or empty
	// field lines) that RFC 9110 §5.6.1.2 asks recipients to skip.
	maxEmptyListElements = 64
)

// SyntaxError describes why a challenge is malformed. It matches
// [ErrMalformedChallenge] with [errors.Is].
type SyntaxError struct {
	Line   int    // index of the field line, from 0
	Offset int    // byte offset in that line where parsing failed
	Reason string // what was wrong, e.g. "duplicate parameter"
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("stepup: malformed challenge: %s (line %d, offset %d)", e.Reason, e.Line, e.Offset)
}

// Is reports whether target is [ErrMalformedChallenge].
func (e *SyntaxError) Is(target error) bool { return target == ErrMalformedChallenge }

// limitError reports the limit a header exceeded. It matches
// [ErrChallengeLimit].
type limitError struct {
	Limit string // the limit's name, e.g. "MaxChallenges"
	Max   int    // its value
}

func (e *limitError) Error() string {
	return fmt.Sprintf("stepup: challenge header over limit %s (%d)", e.Limit, e.Max)
}

func (e *limitError) Is(target error) bool { return target == ErrChallengeLimit }

// Param is one auth-param of a [Challenge].
type Param struct {
	Name  string // as received; compare with [strings.EqualFold]
	Value string // token or quoted-string content, quoted-pairs resolved
}

// Challenge is one challenge of a WWW-Authenticate (or Proxy-Authenticate)
// header. Its strings share memory with the header where no quoted-pair had
// to be resolved.
type Challenge struct {
	// Scheme is the auth-scheme as received. Schemes are case-insensitive
	// (RFC 9110 §11.1): use [Challenge.IsScheme] to compare.
	Scheme string
	// Token68 is set when the challenge carries a token68 instead of
	// auth-params.
	Token68 string
	// Params are the auth-params in the order received.
	Params []Param
	// Err is nil for a well-formed challenge and a [*SyntaxError] otherwise.
	// Scheme and Params then hold what was read before and after the error.
	Err error
}

// IsScheme reports whether the challenge's scheme is scheme, ignoring case.
func (c *Challenge) IsScheme(scheme string) bool { return strings.EqualFold(c.Scheme, scheme) }

// Param returns the value of the auth-param named name, ignoring the case of
// the name, and whether it is present.
func (c *Challenge) Param(name string) (value string, ok bool) {
	for i := range c.Params {
		if strings.EqualFold(c.Params[i].Name, name) {
			return c.Params[i].Value, true
		}
	}
	return "", false
}

// String returns the challenge serialised per RFC 9110: values that are
// tokens stay bare, others are quoted. For a well-formed challenge, parsing
// the result gives the same challenge back.
func (c *Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	if c.Token68 != "" {
		b.WriteByte(' ')
		b.WriteString(c.Token68)
		return b.String()
	}
	for i, p := range c.Params {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		b.WriteByte('=')
		writeParamValue(&b, p.Value)
	}
	return b.String()
}

func writeParamValue(b *strings.Builder, v string) {
	if isToken(v) {
		b.WriteString(v)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
}

// ParseChallenges parses every WWW-Authenticate field line of h, in order
// (never only the first, RFC 9110 §11.6.1).
//
// A malformed challenge is returned with its Err set and parsing resumes at
// the next list element, so it never hides a well-formed challenge elsewhere
// in the header. The error is non-nil only when the header exceeds a limit,
// and then matches [ErrChallengeLimit]: more than 16 KiB in all, more than
// 32 challenges, more than 32 auth-params in one challenge, or more than 64
// empty list elements. The challenges read up to that point are returned
// with it, and a caller should act on none of them.
func ParseChallenges(h http.Header) ([]Challenge, error) {
	// The key is spelled in canonical form so that the lookup does not
	// allocate a canonical copy of it.
	return parseChallengeValues(h.Values("Www-Authenticate")...)
}

// parseChallengeValues parses the field lines of a WWW-Authenticate header,
// in order, as [ParseChallenges] says.
func parseChallengeValues(values ...string) ([]Challenge, error) {
	total := 0
	for _, v := range values {
		total += len(v)
	}
	if total > maxChallengeHeaderBytes {
		return nil, &limitError{Limit: "MaxChallengeHeaderBytes", Max: maxChallengeHeaderBytes}
	}
	p := parser{cur: -1}
	var err error
	for i, v := range values {
		p.line = i
		if err = p.parseLine(v); err != nil {
			break
		}
	}
	return p.finish(), err
}

// arena is sized for the usual header: one challenge with up to four params,
// as in every example of RFC 6750 §3, RFC 9470 §3 and the MCP specification.
type arena struct {
	challenges [1]Challenge
	params     [4]Param
}

// parser holds the state that carries across field lines.
type parser struct {
	challenges []Challenge
	params     []Param // the params of all challenges, in order
	line       int     // index of the field line being parsed
	cur        int     // index of the open challenge, -1 when none
	first      int     // index in params of the open challenge's first param
	empty      int     // empty list elements seen
	raw        bool    // a quote on this line was left unterminated: see skipToComma
}

func (p *parser) finish() []Challenge {
	p.close()
	if len(p.challenges) == 0 {
		return nil
	}
	return p.challenges
}

// close seals the open challenge's params. Their capacity is cut so that
// appending to one challenge's Params never overwrites the next one's.
func (p *parser) close() {
	if p.cur >= 0 && len(p.params) > p.first {
		p.challenges[p.cur].Params = p.params[p.first:len(p.params):len(p.params)]
	}
}

func (p *parser) open(scheme string) error {
	if p.challenges == nil {
		// One allocation holds the usual header; append moves either
		// part out of it when it outgrows it.
		a := new(arena)
		p.challenges, p.params = a.challenges[:0], a.params[:0]
	}
	p.close()
	if len(p.challenges) == maxChallenges {
		p.cur = -1
		return &limitError{Limit: "MaxChallenges", Max: maxChallenges}
	}
	p.challenges = append(p.challenges, Challenge{Scheme: scheme})
	p.cur = len(p.challenges) - 1
	p.first = len(p.params)
	return nil
}

// fail marks the open challenge malformed, or records a scheme-less malformed
// challenge when an element stands before any scheme. off is the offset of
// the fault in the current field line.
func (p *parser) fail(off int, reason string) error {
	if p.cur < 0 {
		if err := p.open(""); err != nil {
			return err
		}
	}
	c := &p.challenges[p.cur]
	if c.Err == nil {
		c.Err = &SyntaxError{Line: p.line, Offset: off, Reason: reason}
	}
	return nil
}

// reject marks the open challenge malformed (see fail) and skips the rest
// of the list element from s[i]: it returns the index of the next comma.
func (p *parser) reject(s string, i, off int, reason string) (int, error) {
	if err := p.fail(off, reason); err != nil {
		return 0, err
	}
	return p.skipToComma(s, i), nil
}

func (p *parser) addParam(off int, name, value string) error {
	if p.challenges[p.cur].Token68 != "" {
		return p.fail(off, "auth-param after token68")
	}
	for _, q := range p.params[p.first:] {
		// Tokens are ASCII, so names that differ in length or first
		// letter never fold equal.
		if len(q.Name) == len(name) && q.Name[0]|0x20 == name[0]|0x20 && strings.EqualFold(q.Name, name) {
			return p.fail(off, "duplicate parameter "+q.Name)
		}
	}
	if len(p.params)-p.first == maxChallengeParams {
		return &limitError{Limit: "MaxChallengeParams", Max: maxChallengeParams}
	}
	p.params = append(p.params, Param{Name: name, Value: value})
	return nil
}

func (p *parser) countEmpty() error {
	p.empty++
	if p.empty > maxEmptyListElements {
		return &limitError{Limit: "MaxEmptyListElements", Max: maxEmptyListElements}
	}
	return nil
}

// parseLine parses one field line as a list of elements, each either a new
// challenge or an auth-param of the open one.
func (p *parser) parseLine(s string) error {
	p.raw = false
	i := skipOWS(s, 0)
	if i == len(s) {
		return p.countEmpty()
	}
	sawElement := false
	for i < len(s) {
		if s[i] == ',' {
			if !sawElement {
				if err := p.countEmpty(); err != nil {
					return err
				}
			}
			sawElement = false
			i = skipOWS(s, i+1)
			continue
		}
		var next int
		var err error
		if sawElement {
			next, err = p.reject(s, i, i, "expected ',' after element")
		} else {
			sawElement = true
			next, err = p.element(s, i)
		}
		if err != nil {
			return err
		}
		i = skipOWS(s, next)
	}
	if !sawElement {
		return p.countEmpty()
	}
	return nil
}

// element parses the list element at s[i] and returns where it ends:
//
//	element = challenge / auth-param   ; the auth-param joins the open challenge
//
// On a syntax error it marks the challenge malformed and skips to the next
// comma.
func (p *parser) element(s string, i int) (int, error) {
	start := i
	j := scanToken(s, i)
	if j == i {
		return p.reject(s, i, i, "expected a token")
	}
	k := skipOWS(s, j)
	if k == len(s) || s[k] != '=' {
		// challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
		if err := p.open(s[i:j]); err != nil {
			return 0, err
		}
		if k == len(s) || s[k] == ',' {
			return k, nil
		}
		if s[j] != ' ' {
			return p.reject(s, j, j, "expected SP after auth-scheme")
		}
		if end, ok := scanToken68(s, k); ok {
			p.challenges[p.cur].Token68 = s[k:end]
			return end, nil
		}
		// The challenge's first auth-param follows.
		start, i = k, k
		if j = scanToken(s, i); j == i {
			return p.reject(s, i, i, "expected token68 or auth-param")
		}
		if k = skipOWS(s, j); k == len(s) || s[k] != '=' {
			return p.reject(s, k, k, "expected '=' after parameter name")
		}
	} else if p.cur < 0 {
		return p.reject(s, k, start, "auth-param before any auth-scheme")
	}
	// auth-param = token BWS "=" BWS ( token / quoted-string ), with
	// s[i:j] the token and s[k] the "=".
	name := s[i:j]
	v := skipOWS(s, k+1)
	if v == len(s) {
		return v, p.fail(v, "missing parameter value")
	}
	var value string
	var end int
	if s[v] != '"' {
		if end = scanToken(s, v); end == v {
			return p.reject(s, v, v, "expected token or quoted-string value")
		}
		value = s[v:end]
	} else if n := strings.IndexByte(s[v+1:], '"'); n >= 0 && isPlainQdtext(s[v+1:v+1+n]) {
		// The usual quoted value: with no backslash before it the next
		// DQUOTE closes it, and with no control character or HTAB in
		// between those bytes are the value as they are.
		value, end = s[v+1:v+1+n], v+2+n
	} else {
		q := p.scanQuoted(s, v)
		if q.end < 0 {
			// Resume just after the opening quote: it may be a stray,
			// and a later comma may start a sound challenge.
			return p.reject(s, v+1, v, q.reason)
		}
		if q.reason != "" {
			// Malformed inside, but its extent is clear: resume after
			// it, so that its closing quote is not taken for the
			// opening quote of a later value.
			return q.end, p.fail(q.badAt, q.reason)
		}
		value, end = q.value, q.end
	}
	return end, p.addParam(start, name, value)
}

// skipToComma returns the index of the next comma at or after i that is not
// inside a quoted-string, or len(s). A quote with no closing quote on the line
// is taken as a plain byte, and so is every later quote on the line: all of
// them are escaped within the unterminated string, so none could close. This
// keeps the work on a line linear in its length.
func (p *parser) skipToComma(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ',':
			return i
		case '"':
			if q := p.scanQuoted(s, i); q.end >= 0 {
				i = q.end
				continue
			}
		}
		i++
	}
	return i
}

// quoted is the result of scanQuoted.
type quoted struct {
	value  string // the content, quoted-pairs resolved
	end    int    // index after the closing quote; -1 when there is none
	reason string // why the string is malformed, "" when it is sound
	badAt  int    // where it is malformed
}

// scanQuoted reads the quoted-string that starts at s[i] == '"':
//
//	quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//	qdtext        = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
//	quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
//
// A control character does not end the string: its extent is found all the
// same, so that the parse can resume after it. The value shares s's memory
// unless a quoted-pair had to be resolved.
func (p *parser) scanQuoted(s string, i int) quoted {
	if p.raw {
		return quoted{end: -1, reason: "unterminated quoted-string"}
	}
	q := quoted{end: -1}
	escaped := false
	for j := i + 1; j < len(s); {
		c := s[j]
		if byteClass[c]&qdtext != 0 {
			j++
			continue
		}
		if c == '"' {
			q.end = j + 1
			break
		}
		if c == '\\' {
			if j+1 == len(s) {
				break
			}
			if isCTL(s[j+1]) && q.reason == "" {
				q.reason, q.badAt = "control character in quoted-pair", j+1
			}
			escaped = true
			j += 2
			continue
		}
		if q.reason == "" {
			q.reason, q.badAt = "control character in quoted-string", j
		}
		j++
	}
	switch {
	case q.end < 0:
		p.raw = true
		q.reason, q.badAt = "unterminated quoted-string", i
	case q.reason != "":
	case escaped:
		q.value = unescape(s[i+1 : q.end-1])
	default:
		q.value = s[i+1 : q.end-1]
	}
	return q
}

// isPlainQdtext reports whether v, which holds no DQUOTE, is all qdtext
// other than HTAB, so that DQUOTE v DQUOTE is a quoted-string whose value is
// v. It decides for most values of a header, so it tests eight bytes at a
// time.
func isPlainQdtext(v string) bool {
	if len(v) < 8 {
		for i := 0; i < len(v); i++ {
			if byteClass[v[i]]&qdtext == 0 || v[i] == '\t' {
				return false
			}
		}
		return true
	}
	// The last word may overlap the one before: bytes tested twice do no
	// harm.
	last := load64(v, len(v)-8)
	for ; len(v) > 8; v = v[8:] {
		if !plainQdtext8(load64(v, 0)) {
			return false
		}
	}
	return plainQdtext8(last)
}

// load64 returns s[i:i+8] as a little-endian word: a single load on the
// machines that allow it.
func load64(s string, i int) uint64 {
	w := s[i : i+8]
	return uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
}

// plainQdtext8 reports whether none of the eight bytes of x is a control
// character (HTAB included), a backslash or DEL.
func plainQdtext8(x uint64) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	// For n <= 0x80, (x - ones*n) &^ x sets the high bit of each byte
	// below n, maybe of some bytes above such a byte (borrows), but of none
	// if there is none; the &^ x keeps obs-text from matching. The XOR
	// with c turns the bytes equal to c into the bytes below 1.
	backslash := x ^ ones*'\\'
	del := x ^ ones*0x7f
	m := (x-ones*' ')&^x | (backslash-ones)&^backslash | (del-ones)&^del
	return m&highs == 0
}

func unescape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// skipOWS returns the index of the first byte at or after i that is not SP or
// HTAB.
func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// scanToken returns the end of the token starting at s[i] (i when none).
func scanToken(s string, i int) int {
	// Four bytes a step: most tokens are parameter names of 5 to 17 bytes.
	for i+4 <= len(s) {
		w := s[i : i+4]
		if byteClass[w[0]]&byteClass[w[1]]&byteClass[w[2]]&byteClass[w[3]]&tchar == 0 {
			break
		}
		i += 4
	}
	for i < len(s) && byteClass[s[i]]&tchar != 0 {
		i++
	}
	return i
}

// scanToken68 reports whether s[i:] starts with a token68 that is followed by
// OWS and then a comma or the end of the line, and where the token68 ends.
func scanToken68(s string, i int) (int, bool) {
	j := i
	for j < len(s) && byteClass[s[j]]&token68 != 0 {
		j++
	}
	if j == i {
		return i, false
	}
	for j < len(s) && s[j] == '=' {
		j++
	}
	k := skipOWS(s, j)
	return j, k == len(s) || s[k] == ','
}

// isCTL reports the bytes that neither qdtext nor quoted-pair admit: both
// take HTAB, SP, VCHAR and obs-text, and qdtext leaves '"' and '\\' to the
// quoted-string syntax itself.
func isCTL(c byte) bool { return (c < ' ' && c != '\t') || c == 0x7f }

func isToken(s string) bool {
	return s != "" && scanToken(s, 0) == len(s)
}

// Byte classes, as bits of byteClass[c].
const (
	tchar   = 1 << iota // "!#$%&'*+-.^_`|~", DIGIT, ALPHA
	token68             // "-._~+/", DIGIT, ALPHA: token68 without its "=" padding
	qdtext              // HTAB, SP, %x21, %x23-5B, %x5D-7E, obs-text
)

// byteClass maps each byte to its classes. It is a constant string rather
// than an array so that the package holds no table that could be written to;
// indexing it with a byte needs no bounds check. TestByteClass checks it
// against the ABNF.
const byteClass = "" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00" + // 0x00-0x0f: CTL, HTAB
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" + // 0x10-0x1f: CTL
	"\x04\x05\x00\x05\x05\x05\x05\x05\x04\x04\x05\x07\x04\x07\x07\x06" + // 0x20-0x2f:  !"#$%&'()*+,-./
	"\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x04\x04\x04\x04\x04\x04" + // 0x30-0x3f: 0123456789:;<=>?
	"\x04\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07" + // 0x40-0x4f: @ABCDEFGHIJKLMNO
	"\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x04\x00\x04\x05\x07" + // 0x50-0x5f: PQRSTUVWXYZ[\]^_
	"\x05\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07" + // 0x60-0x6f: `abcdefghijklmno
	"\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07\x04\x05\x04\x07\x00" + // 0x70-0x7f: pqrstuvwxyz{|}~ DEL
	"\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04" + // 0x80-0xff: obs-text
	"\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04" +
	"\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04" +
	"\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04" +
	"\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04" +
	"\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04" +
	"\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04" +
	"\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04"

// The OAuth auth-schemes.
const (
	schemeBearer = "Bearer" // RFC 6750
	schemeDPoP   = "DPoP"   // RFC 9449
)

// The error codes a protected resource puts in a challenge's error
// parameter that the Transport answers (the package documentation's
// behaviour table says how).
const (
	codeInvalidToken                   = "invalid_token"                    // RFC 6750 §3.1
	codeInsufficientScope              = "insufficient_scope"               // RFC 6750 §3.1
	codeInsufficientUserAuthentication = "insufficient_user_authentication" // RFC 9470 §3
	codeInsufficientClaims             = "insufficient_claims"              // claims challenge (CAE)
	codeUseDPoPNonce                   = "use_dpop_nonce"                   // RFC 9449 §9
)

// NoMaxAge is [OAuthChallenge.MaxAge] when the challenge carries no valid
// max_age.
const NoMaxAge = -1

// OAuthChallenge is the typed view of a Bearer (RFC 6750 §3) or DPoP
// (RFC 9449 §7.1) challenge, with the parameters of RFC 9470 (step-up),
// RFC 9728 (resource metadata) and claims challenges.
type OAuthChallenge struct {
	Scheme           string // "Bearer" or "DPoP", whatever case was received
	Error            string // error code, e.g. "insufficient_scope"; "" when absent
	ErrorDescription string // for developers, never for acting on
	ErrorURI         string
	Realm            string
	// Scope is the scope the resource says the request needs (RFC 6750
	// §3): a set whose order carries no meaning. Nil when absent or empty.
	Scope Scopes
	// ResourceMetadata is the resource_metadata URL (RFC 9728 §5.1) as
	// received; the Transport validates it before handing it on.
	ResourceMetadata string
	// ACRValues are the acr_values of RFC 9470 §3, most preferred first.
	ACRValues []string
	// MaxAge is the max_age of RFC 9470 §3 in seconds, or NoMaxAge when it
	// is absent or not a non-negative integer.
	MaxAge int
	// Claims is the decoded JSON of a claims challenge's base64 claims
	// parameter.
	Claims json.RawMessage
	// Algs are the JWS algorithms a DPoP challenge accepts (RFC 9449 §7.1).
	Algs []string
}

// paramError reports an auth-param whose value breaks its specification,
// so that the challenge must not be acted on. It matches
// [ErrMalformedChallenge].
type paramError struct {
	Param  string
	Reason string
}

func (e *paramError) Error() string {
	return fmt.Sprintf("stepup: invalid %s parameter: %s", e.Param, e.Reason)
}

func (e *paramError) Is(target error) bool { return target == ErrMalformedChallenge }

// OAuth returns the typed view of a Bearer or DPoP challenge. It fails with
// the challenge's own syntax error, with [ErrNotOAuth], or with an error
// matching [ErrMalformedChallenge] when scope, error or claims break their
// character sets
// (RFC 6750 §3): such a challenge must not be acted on. An invalid
// max_age is dropped rather than failing (RFC 9470 §3). Unknown parameters
// are ignored (RFC 9110 §16.4.2).
func (c *Challenge) OAuth() (OAuthChallenge, error) {
	if c.Err != nil {
		return OAuthChallenge{}, c.Err
	}
	if !c.IsScheme(schemeBearer) && !c.IsScheme(schemeDPoP) {
		return OAuthChallenge{}, ErrNotOAuth
	}
	o := OAuthChallenge{Scheme: c.Scheme, MaxAge: NoMaxAge}
	for _, p := range c.Params {
		if err := o.set(p); err != nil {
			return OAuthChallenge{}, err
		}
	}
	return o, nil
}

func (o *OAuthChallenge) set(p Param) error {
	var err error
	switch strings.ToLower(p.Name) {
	case "error":
		if !isErrorCode(p.Value) {
			return &paramError{Param: "error", Reason: "character outside RFC 6750 §3 set"}
		}
		o.Error = p.Value
	case "error_description":
		o.ErrorDescription = p.Value
	case "error_uri":
		o.ErrorURI = p.Value
	case "realm":
		o.Realm = p.Value
	case "scope":
		o.Scope, err = ParseScopes(p.Value)
	case "resource_metadata":
		o.ResourceMetadata = p.Value
	case "acr_values":
		o.ACRValues = strings.Fields(p.Value)
	case "max_age":
		o.MaxAge = parseMaxAge(p.Value)
	case "claims":
		o.Claims, err = decodeClaims(p.Value)
	case "algs":
		o.Algs = strings.Fields(p.Value)
	}
	return err
}

// isErrorCode: 1*( %x20-21 / %x23-5B / %x5D-7E ) (RFC 6750 §3).
func isErrorCode(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// parseMaxAge returns the non-negative integer s (1*DIGIT, RFC 9470 §3),
// or NoMaxAge when s is not one or exceeds 2^31-1 seconds, which fits an
// int on every platform.
func parseMaxAge(s string) int {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return NoMaxAge
	}
	return int(n)
}

// decodeClaims decodes a claims challenge's base64 parameter (padded, as
// Entra sends it, or unpadded, standard or URL alphabet) and checks that it
// holds JSON.
func decodeClaims(s string) (json.RawMessage, error) {
	for _, enc := range [...]*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if !json.Valid(b) {
			return nil, &paramError{Param: "claims", Reason: "not JSON after base64 decoding"}
		}
		return b, nil
	}
	return nil, &paramError{Param: "claims", Reason: "not base64"}
}
