package extract

import "log/slog"

// Secret is a configuration value that must never be printed or logged
// (a password, a client secret, a hash key): it formats as REDACTED
// everywhere; Value gives the real thing to the code that sends it.
type Secret string

const redacted = "REDACTED"

func (s Secret) String() string                   { return redacted }
func (s Secret) GoString() string                 { return redacted }
func (s Secret) MarshalJSON() ([]byte, error)     { return []byte(`"` + redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error)     { return []byte(redacted), nil }
func (s Secret) LogValue() slog.Value             { return slog.StringValue(redacted) }
func (s *Secret) UnmarshalText(text []byte) error { *s = Secret(text); return nil }

// Value is the secret itself.
func (s Secret) Value() string { return string(s) }
