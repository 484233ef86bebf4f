package config

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// The INI dialect of Python's SafeConfigParser, which the original read its
// apt-p2p.conf with: `[section]` headers, `name = value` or `name: value`,
// continuation lines that start with white space, `#` and `;` comment lines,
// case-insensitive option names, a [DEFAULT] section visible from every
// section, and `%(name)s` interpolation with `%%` for a literal percent sign.

const defaultSection = "DEFAULT"

// maxInterpolationDepth is Python's MAX_INTERPOLATION_DEPTH: it stops
// self-referencing values.
const maxInterpolationDepth = 10

// rawValue is one option as written, with where it was written.
type rawValue struct {
	value string
	file  string
	line  int
}

func (r rawValue) where() string {
	if r.file == "" {
		return "built-in default"
	}
	return fmt.Sprintf("%s:%d", r.file, r.line)
}

// iniFile holds the options of every section; later files override earlier ones.
type iniFile struct {
	sections map[string]map[string]rawValue // section name → upper-cased option → value
	order    []string                       // section names in first-seen order
}

func newINI() *iniFile {
	return &iniFile{sections: map[string]map[string]rawValue{defaultSection: {}}}
}

func (f *iniFile) section(name string) map[string]rawValue {
	s, ok := f.sections[name]
	if !ok {
		s = map[string]rawValue{}
		f.sections[name] = s
		f.order = append(f.order, name)
	}
	return s
}

// parse reads one file's contents into f.
func (f *iniFile) parse(name string, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur map[string]rawValue
	var curOpt string
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' || (len(trimmed) >= 3 && strings.EqualFold(trimmed[:3], "rem") && (len(trimmed) == 3 || trimmed[3] == ' ')) {
			// A blank line ends a continuation only for the purposes of
			// layout: Python keeps appending non-empty continuation lines.
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur == nil || curOpt == "" {
				return fmt.Errorf("%s:%d: continuation line %q without an option before it", name, lineNo, trimmed)
			}
			v := cur[curOpt]
			v.value += "\n" + trimmed
			cur[curOpt] = v
			continue
		}
		if trimmed[0] == '[' {
			end := strings.IndexByte(trimmed, ']')
			if end < 0 {
				return fmt.Errorf("%s:%d: section header %q has no closing ']'", name, lineNo, trimmed)
			}
			sec := strings.TrimSpace(trimmed[1:end])
			if sec == "" {
				return fmt.Errorf("%s:%d: empty section name", name, lineNo)
			}
			cur = f.section(sec)
			curOpt = ""
			continue
		}
		if cur == nil {
			return fmt.Errorf("%s:%d: option %q before any [section] header (put it under [DEFAULT])", name, lineNo, trimmed)
		}
		i := strings.IndexAny(trimmed, "=:")
		if i <= 0 {
			return fmt.Errorf("%s:%d: expected `NAME = value`, got %q", name, lineNo, trimmed)
		}
		opt := strings.ToUpper(strings.TrimSpace(trimmed[:i]))
		val := strings.TrimSpace(trimmed[i+1:])
		// Python strips a trailing ` ;comment` from values.
		if j := strings.Index(val, " ;"); j >= 0 {
			val = strings.TrimSpace(val[:j])
		}
		cur[opt] = rawValue{value: val, file: name, line: lineNo}
		curOpt = opt
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// lookup finds opt in section, falling back to [DEFAULT], and interpolates it.
func (f *iniFile) lookup(section, opt string) (rawValue, bool, error) {
	rv, ok := f.raw(section, opt)
	if !ok {
		return rv, false, nil
	}
	v, err := f.interpolate(section, rv.value, 0)
	if err != nil {
		return rv, true, fmt.Errorf("%s: %s: %w", rv.where(), opt, err)
	}
	rv.value = v
	return rv, true, nil
}

func (f *iniFile) raw(section, opt string) (rawValue, bool) {
	if s, ok := f.sections[section]; ok {
		if rv, ok := s[opt]; ok {
			return rv, true
		}
	}
	rv, ok := f.sections[defaultSection][opt]
	return rv, ok
}

func (f *iniFile) interpolate(section, v string, depth int) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	if depth >= maxInterpolationDepth {
		return "", fmt.Errorf("interpolation deeper than %d levels (a value refers to itself?)", maxInterpolationDepth)
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		if i+1 < len(v) && v[i+1] == '(' {
			end := strings.Index(v[i:], ")s")
			if end < 0 {
				return "", fmt.Errorf("bad interpolation in %q: expected %%(name)s", v)
			}
			name := strings.ToUpper(v[i+2 : i+end])
			ref, ok := f.raw(section, name)
			if !ok {
				return "", fmt.Errorf("%%(%s)s refers to an option that is not set", strings.ToLower(name))
			}
			sub, err := f.interpolate(section, ref.value, depth+1)
			if err != nil {
				return "", err
			}
			b.WriteString(sub)
			i += end + 1
			continue
		}
		return "", fmt.Errorf("'%%' must be followed by '%%' or '(' in %q (write %%%% for a literal %%)", v)
	}
	return b.String(), nil
}
