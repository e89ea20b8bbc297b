package grants

import (
	"context"
	"fmt"

	"golang.org/x/oauth2"
)

// IDTokenFrom returns an [Enterprise.IDToken] that takes the user's ID
// token from ts: the token source of the client's OpenID Connect login at
// the IdP, such as [oauth2.Config.TokenSource] with the token of the
// login, which refreshes it when its access token expires; a refresh
// response carries a new ID token (OpenID Connect Core 1.0 §12.2).
func IDTokenFrom(ts oauth2.TokenSource) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		tok, err := ts.Token()
		if err != nil {
			return "", fmt.Errorf("grants: the login's token: %w", err)
		}
		id, _ := tok.Extra("id_token").(string)
		if id == "" {
			return "", fmt.Errorf("%w: the login's token response has no id_token (was openid asked for?)", ErrNoSubjectToken)
		}
		return id, nil
	}
}
