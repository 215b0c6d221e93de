// Package pii finds personal identifiers in the forms banks write them:
// names folded to ASCII or transliterated ("BERGSTROEM" for Bergström,
// "AAKERLUND" for Åkerlund) and Swedish personal and organisation numbers
// whatever their separators ("19950309 6316", "556.987.6543"). The
// providers' transformers use it to redact kept text; extract uses it to
// scrub provider error bodies before they become error strings.
package pii

import (
	"unicode"
	"unicode/utf8"
)

// Redacted replaces an identifier inside kept text.
const Redacted = "[redacted]"

// Fold is s lowercased, without diacritics and with the Nordic and German
// transliterations collapsed, so that every spelling a bank may use of a
// name folds alike: å, aa → a; ä, æ, ae → a; ö, ø, oe → o; ü, ue → u;
// ß → ss. (Collapsing "ae" also folds "Michael" as "michal": harmless when
// both sides are folded.)
func Fold(s string) string {
	f, _, _ := folded(s)
	return f
}

// folded is Fold with, for each byte of the result, the byte range of s it
// comes from: start[i], end[i].
func folded(s string) (string, []int, []int) {
	start := make([]int, 0, len(s))
	end := make([]int, 0, len(s))
	out := foldAppend(make([]byte, 0, len(s)), s, func(merged bool, from, to, n int) {
		if merged {
			end[len(end)-1] = to
			return
		}
		for range n {
			start, end = append(start, from), append(end, to)
		}
	})
	return string(out), start, end
}

// foldAppend appends Fold(s) to dst. track, if not nil, is told of each
// rune appended (n bytes, from s[from:to]) or merged into the one before.
func foldAppend(dst []byte, s string, track func(merged bool, from, to, n int)) []byte {
	emit := func(c rune, from, to int) {
		k := len(dst)
		// The second letter of a transliteration ("ae", "oe", "ue",
		// "aa") merges into the first.
		if k > 0 && (c == 'e' && (dst[k-1] == 'a' || dst[k-1] == 'o' || dst[k-1] == 'u') || c == 'a' && dst[k-1] == 'a') {
			if track != nil {
				track(true, from, to, 0)
			}
			return
		}
		dst = utf8.AppendRune(dst, c)
		if track != nil {
			track(false, from, to, len(dst)-k)
		}
	}
	for i, r := range s {
		n := i + utf8.RuneLen(r)
		if r == utf8.RuneError {
			n = i + 1
		}
		c, t := foldRune(r)
		if t == "" {
			emit(c, i, n)
			continue
		}
		for _, c := range t {
			emit(c, i, n)
		}
	}
	return dst
}

// foldRune is r's folded spelling, a rune or a transliteration: the least
// rune of its case orbit lowercased (so the Kelvin sign is k and ſ is s),
// then the letter without its marks.
func foldRune(r rune) (rune, string) {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r, ""
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	r = unicode.ToLower(least)
	if t, ok := translit[r]; ok {
		return 0, t
	}
	return r, ""
}

// translit covers the Latin letters of the names banks print; others keep
// their rune (and still match themselves).
var translit = map[rune]string{
	'å': "a", 'ä': "a", 'æ': "a", 'à': "a", 'á': "a", 'â': "a", 'ã': "a", 'ā': "a", 'ą': "a",
	'ö': "o", 'ø': "o", 'œ': "o", 'ò': "o", 'ó': "o", 'ô': "o", 'õ': "o", 'ő': "o",
	'ü': "u", 'ù': "u", 'ú': "u", 'û': "u", 'ű': "u", 'ů': "u",
	'ß': "ss", 'ç': "c", 'č': "c", 'ć': "c", 'ð': "d", 'đ': "d", 'þ': "th",
	'è': "e", 'é': "e", 'ê': "e", 'ë': "e", 'ě': "e", 'ę': "e",
	'ì': "i", 'í': "i", 'î': "i", 'ï': "i", 'ł': "l", 'ñ': "n", 'ń': "n", 'ň': "n", 'ř': "r",
	'š': "s", 'ś': "s", 'ý': "y", 'ÿ': "y", 'ž': "z", 'ź': "z", 'ż': "z",
}

// isWordRune: letters and digits of any script bound a word (\b knows only
// ASCII and would cut "Åsa").
func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }
