package extract

// closeJSON turns p, the first bytes of a valid JSON value, into valid
// JSON: cut back to the last point where the value can end (after a
// complete member or element, after an opening bracket, or between the
// characters of a string value) and close what is open there. Nothing
// fits (p cut inside the first key): nil.
func closeJSON(p []byte) []byte {
	cut, quote, _ := jsonEnd(p)
	if cut == 0 {
		return nil
	}
	_, _, stack := jsonEnd(p[:cut])
	out := append([]byte(nil), p[:cut]...)
	if quote {
		out = append(out, '"')
	}
	for i := len(stack) - 1; i >= 0; i-- {
		out = append(out, stack[i]+2) // '{'+2 is '}', '['+2 is ']'
	}
	return out
}

// jsonEnd scans p, a prefix of a valid JSON value, and returns the last
// position where it may be cut and closed (quote: inside a string value,
// which then needs its closing quote) and the containers open at p's end.
func jsonEnd(p []byte) (cut int, quote bool, stack []byte) {
	inStr, key, wantKey := false, false, false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if inStr {
			switch {
			case c == '\\':
				if !key {
					cut, quote = i, true
				}
				i++ // the escaped byte; \uXXXX's hex digits follow
				if i < len(p) && p[i] == 'u' {
					i += 4
				}
				if !key && i < len(p) {
					cut = i + 1
				}
			case c == '"':
				inStr = false
				if !key {
					cut, quote = i+1, false
				}
			case key:
			case c < 0x80: // a whole character
				cut, quote = i+1, true
			case c >= 0xC0: // a character starts here
				cut, quote = i, true
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
		case ':':
			wantKey = false
		case ',':
			wantKey = len(stack) > 0 && stack[len(stack)-1] == '{'
		case '{', '[':
			stack = append(stack, c)
			wantKey = c == '{'
			cut, quote = i+1, false
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			cut, quote = i+1, false
		case '"':
			inStr, key = true, wantKey
			if !key {
				cut, quote = i+1, true
			}
		default: // a number or literal: complete once something follows it
			j := i
			for j < len(p) && !isDelim(p[j]) {
				j++
			}
			if j < len(p) {
				cut, quote = j, false
			}
			i = j - 1
		}
	}
	return cut, quote, stack
}

func isDelim(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}
