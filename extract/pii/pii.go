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
	out := make([]byte, 0, len(s))
	start := make([]int, 0, len(s))
	end := make([]int, 0, len(s))
	for i, r := range s {
		n := i + utf8.RuneLen(r)
		if r == utf8.RuneError {
			n = i + 1
		}
		for _, c := range foldRune(r) {
			k := len(out)
			// The second letter of a transliteration ("ae", "oe", "ue",
			// "aa") merges into the first.
			if k > 0 && (c == 'e' && (out[k-1] == 'a' || out[k-1] == 'o' || out[k-1] == 'u') || c == 'a' && out[k-1] == 'a') {
				end[k-1] = n
				continue
			}
			out = utf8.AppendRune(out, c)
			for len(start) < len(out) {
				start = append(start, i)
				end = append(end, n)
			}
		}
	}
	return string(out), start, end
}

// foldRune is r's folded spelling: the least rune of its case orbit
// lowercased (so the Kelvin sign is k and ſ is s), then the letter
// without its marks.
func foldRune(r rune) []rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return []rune{r}
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	r = unicode.ToLower(least)
	if t, ok := translit[r]; ok {
		return []rune(t)
	}
	return []rune{r}
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
