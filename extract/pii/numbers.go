package pii

// Swedish personal numbers (personnummer and samordningsnummer: YYMMDD or
// YYYYMMDD, then four digits, the last a Luhn check over the ten-digit
// form; a samordningsnummer's day is 60 more) and organisation numbers
// (ten digits, the third at least 2, Luhn), however they are written: a
// number is a run of digit groups joined by up to three of " -.+"
// ("19950309 6316", "1995-03-09-6316", "556 987 6543", "950309+6316").
// The checksum and the date keep amounts, dates, IBANs and invoice
// numbers out.

// maxSep is the longest separator between two groups of one number.
const maxSep = 3

// group is a run of ASCII digits at s[start:end].
type group struct{ start, end int }

// Numbers returns the spans of s that are a Swedish personal or
// organisation number (checksum valid), or whose digits are one of own (a
// known person's ids, digits only, matched without the checksum).
func Numbers(s string, own ...string) []Span {
	longest := 12
	for _, o := range own {
		longest = max(longest, len(o))
	}
	var out []Span
	for _, chain := range chains(s) {
		if iban(s, chain) {
			continue
		}
		for i := 0; i < len(chain); {
			digits := make([]byte, 0, longest)
			best := -1
			for j := i; j < len(chain) && len(digits) < longest; j++ {
				digits = append(digits, s[chain[j].start:chain[j].end]...)
				if isID(string(digits), own) {
					best = j
				}
			}
			if best < 0 {
				i++
				continue
			}
			out = append(out, Span{chain[i].start, chain[best].end})
			i = best + 1
		}
	}
	return out
}

// chains splits s's digit groups into runs joined by separators.
func chains(s string) [][]group {
	var out [][]group
	var cur []group
	last := -1 // end of the previous group
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if last < 0 || !separators(s[last:i]) {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
		}
		cur = append(cur, group{i, j})
		last, i = j, j
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func separators(sep string) bool {
	if len(sep) == 0 || len(sep) > maxSep {
		return false
	}
	for i := 0; i < len(sep); i++ {
		switch sep[i] {
		case ' ', '-', '.', '+':
		default:
			return false
		}
	}
	return true
}

// iban: a chain that starts right after a country code and two check
// digits is an IBAN written in blocks ("SE45 5000 0000 0583 9825 7466").
func iban(s string, chain []group) bool {
	g := chain[0]
	return g.end-g.start == 2 && g.start >= 2 && isUpper(s[g.start-1]) && isUpper(s[g.start-2]) &&
		(g.start == 2 || !isUpper(s[g.start-3]))
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// isID tells whether digits is a personal or organisation number, or one of
// own.
func isID(d string, own []string) bool {
	for _, o := range own {
		if o != "" && d == o {
			return true
		}
	}
	switch len(d) {
	case 12:
		switch d[:2] {
		case "18", "19", "20":
			return personal(d[2:])
		case "16":
			return organisation(d[2:])
		}
	case 10:
		return personal(d) || organisation(d)
	}
	return false
}

// personal: YYMMDDNNNC with a valid month, a day (or day+60) and the check.
func personal(d string) bool {
	month := num2(d[2:4])
	day := num2(d[4:6])
	if day > 60 {
		day -= 60
	}
	return month >= 1 && month <= 12 && day >= 1 && day <= 31 && luhn(d)
}

// organisation: NNNNNNNNNC, the third digit at least 2 (where a personal
// number's month starts), the first not 0, and the check.
func organisation(d string) bool { return d[0] != '0' && d[2] >= '2' && luhn(d) }

func num2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }

// luhn checks the mod-10 check digit of a ten-digit number.
func luhn(d string) bool {
	sum := 0
	for i := 0; i < len(d); i++ {
		v := int(d[i] - '0')
		if i%2 == 0 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// OwnDigits are the digit forms of a known id under which Numbers finds it
// without the checksum: all its digits, and the ten-digit form of a
// twelve-digit number. Fewer than six digits find nothing.
func OwnDigits(id string) []string {
	d := make([]byte, 0, len(id))
	for i := 0; i < len(id); i++ {
		if isDigit(id[i]) {
			d = append(d, id[i])
		}
	}
	if len(d) < 6 {
		return nil
	}
	out := []string{string(d)}
	if len(d) == 12 {
		out = append(out, string(d[2:]))
	}
	return out
}
