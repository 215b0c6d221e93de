package pii

import (
	"regexp"
	"strings"
	"unicode"
)

// Secrets and identifiers a provider may echo in an error body: its view
// of the request's Authorization header, a client secret, a customer's
// record. The key patterns are loose on purpose: a key that merely looks
// like one ("tokenType", "username") loses its value, not the message.
var (
	secretKey = `[\w.-]*(?:authorization|password|passwd|secret|token|api[-_]?key|cookie|credential|session|ssn|` +
		`social[-_]?security|personnummer|personal[-_]?(?:id|number)|national[-_]?id|first[-_]?name|last[-_]?name|` +
		`full[-_]?name|holder|owner|e-?mail|phone)[\w.-]*`
	// "key": "value" or "key": 123, the key in any case.
	jsonSecret = regexp.MustCompile(`(?i)("` + secretKey + `"\s*:\s*)("(?:[^"\\]|\\.)*"|[^\s,}\]]+)`)
	// Authorization: Bearer … or client_secret=… as a line of its own
	// (an echoed request) or a query/form parameter.
	lineSecret  = regexp.MustCompile(`(?im)^([\s"'>]*` + secretKey + `[ \t]*[:=][ \t]*)([^\r\n]*)`)
	paramSecret = regexp.MustCompile(`(?i)([?&;]` + secretKey + `=)([^&\s"';]*)`)
	// Credentials without a key: a scheme and its token, a JWT.
	bearer = regexp.MustCompile(`(?i)\b(?:bearer|basic)\s+([A-Za-z0-9._~+/=-]+)`)
	jwt    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
)

// ScrubBody returns an HTTP error body without credentials (bearer and
// basic tokens, JWTs, the values of Authorization, password, secret, token
// and like keys as JSON members, header lines or parameters), personal
// members (ssn, names, email…) and Swedish personal and organisation
// numbers anywhere. What is left, the provider's own message, is kept to
// act on. A JSON body stays JSON.
func ScrubBody(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	s := jsonSecret.ReplaceAllString(string(b), `${1}"`+Redacted+`"`)
	s = lineSecret.ReplaceAllString(s, "${1}"+Redacted)
	s = paramSecret.ReplaceAllString(s, "${1}"+Redacted)
	s = bearer.ReplaceAllStringFunc(s, func(m string) string {
		// A word ("Basic authentication required") is the message.
		tok := bearer.FindStringSubmatch(m)[1]
		if word(tok) {
			return m
		}
		return m[:len(m)-len(tok)] + Redacted
	})
	s = jwt.ReplaceAllString(s, Redacted)
	s = Replace(s, Numbers(s))
	return []byte(s)
}

// word: letters in one case, the first maybe capital. A token (base64, a
// JWT) mixes cases or has digits.
func word(s string) bool {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) }) >= 0 {
		return false
	}
	rest := s[1:]
	return rest == strings.ToLower(rest) || s == strings.ToUpper(s)
}
