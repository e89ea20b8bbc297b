package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/stepup-go/stepup"
	"github.com/stepup-go/stepup/authcode"
	"github.com/stepup-go/stepup/discovery"
	"github.com/stepup-go/stepup/grants"
)

// grantContext is what the scenarios of the suite's extensions tell the
// client in MCP_CONFORMANCE_CONTEXT, besides a client_id and secret: a
// private key to sign client assertions with, an enterprise IdP and the
// user's ID token there, a workload's token.
type grantContext struct {
	PrivateKeyPEM    string `json:"private_key_pem"`
	SigningAlgorithm string `json:"signing_algorithm"`
	IdPClientID      string `json:"idp_client_id"`
	IdPIDToken       string `json:"idp_id_token"`
	IdPIssuer        string `json:"idp_issuer"`
	IdPTokenEndpoint string `json:"idp_token_endpoint"`
	WorkloadJWT      string `json:"valid_jwt"`
}

// chooseEscalator returns the Escalator the scenario's context asks for,
// as a client would pick one from its configuration: an enterprise IdP
// and ID token, enterprise-managed authorization; a workload token, the
// JWT bearer grant; a private key, or a secret in a client credentials
// scenario, the client credentials grant; else the authorization code
// flow, ac, sharing disc.
func chooseEscalator(sc scenarioContext, ac *authcode.Escalator, disc *discovery.Client) (stepup.Escalator, error) {
	g := sc.grantContext
	switch {
	case g.IdPIDToken != "":
		return &grants.Enterprise{
			IDToken:          func(context.Context) (string, error) { return g.IdPIDToken, nil },
			IdPIssuer:        g.IdPIssuer,
			IdPTokenEndpoint: g.IdPTokenEndpoint,
			IdPClient:        grants.PublicClient{ClientID: g.IdPClientID},
			Client:           grants.ClientSecret{ClientID: sc.ClientID, Secret: sc.ClientSecret},
			Discovery:        disc,
		}, nil
	case g.WorkloadJWT != "":
		return &grants.Workload{
			Token:     func(context.Context) (string, error) { return g.WorkloadJWT, nil },
			Client:    grants.PublicClient{ClientID: sc.ClientID},
			Discovery: disc,
		}, nil
	case g.PrivateKeyPEM != "":
		key, err := grants.ParsePrivateKeyPEM([]byte(g.PrivateKeyPEM))
		if err != nil {
			return nil, fmt.Errorf("the scenario's private key: %w", err)
		}
		return &grants.ClientCredentials{
			Auth:      grants.PrivateKeyJWT{ClientID: sc.ClientID, Key: key, Algorithm: g.SigningAlgorithm},
			Discovery: disc,
		}, nil
	case strings.Contains(sc.Name, "client-credentials") && sc.ClientSecret != "":
		return &grants.ClientCredentials{
			Auth:      grants.ClientSecret{ClientID: sc.ClientID, Secret: sc.ClientSecret},
			Discovery: disc,
		}, nil
	}
	return ac, nil
}
