package sync

import "strings"

// RedactTarget returns target fit for logs, errors and /status: a
// URL-shaped target keeps its scheme, host, path and query keys, while
// its user information, every query value and its fragment become
// REDACTED, since any of them may carry a credential (a password, a
// presigned token). It works on the text rather than url.Parse, because
// the targets most in need of it are the ones that fail to parse.
func RedactTarget(target string) string {
	scheme, rest, ok := strings.Cut(target, "://")
	if !ok {
		return target
	}
	rest, fragment, hasFragment := strings.Cut(rest, "#")
	rest, query, hasQuery := strings.Cut(rest, "?")
	authority, path, hasPath := strings.Cut(rest, "/")

	var b strings.Builder
	b.WriteString(scheme + "://")
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		b.WriteString("REDACTED@")
		authority = authority[at+1:]
	}
	b.WriteString(authority)
	if hasPath {
		b.WriteString("/" + path)
	}
	if hasQuery {
		b.WriteString("?" + redactQuery(query))
	}
	if hasFragment && fragment != "" {
		b.WriteString("#REDACTED")
	}
	return b.String()
}

// redactQuery keeps each parameter's key and hides its value; a parameter
// without "=" may itself be the secret, so it is hidden whole.
func redactQuery(query string) string {
	params := strings.Split(query, "&")
	for i, p := range params {
		key, _, hasValue := strings.Cut(p, "=")
		switch {
		case hasValue:
			params[i] = key + "=REDACTED"
		case p != "":
			params[i] = "REDACTED"
		}
	}
	return strings.Join(params, "&")
}
