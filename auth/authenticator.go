package auth

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Authenticator finds the identity of each gRPC call: from the client
// certificate verified by the TLS handshake, or from the bearer token in the
// `authorization` metadata.
//
//   - A bearer token that matches no identity is refused (Unauthenticated),
//     always: a wrong token is a misconfigured agent, better told at once.
//   - A verified certificate that matches no identity, or no credential at
//     all, is refused too, unless AllowUnauthenticated: then the call goes on
//     without an identity (events are accepted whatever host they name).
//   - With both a certificate and a token, they must name the same host; the
//     certificate's entry is used.
//   - Without identities (Set nil), every call goes on without an identity.
type Authenticator struct {
	set                  atomic.Pointer[Set]
	allowUnauthenticated bool
	log                  *slog.Logger
}

// New returns an authenticator using set (nil: no identities file).
func New(set *Set, allowUnauthenticated bool, log *slog.Logger) *Authenticator {
	if log == nil {
		log = slog.Default()
	}
	a := &Authenticator{allowUnauthenticated: allowUnauthenticated, log: log}
	a.set.Store(set)
	return a
}

// SetIdentities replaces the identities (a reload); calls already
// authenticated keep their identity, the next ones use s.
func (a *Authenticator) SetIdentities(s *Set) { a.set.Store(s) }

// Identities returns the identities in force (nil: none configured).
func (a *Authenticator) Identities() *Set { return a.set.Load() }

// Method says how a call was authenticated.
type Method string

const (
	MethodCertificate Method = "certificate"
	MethodToken       Method = "token"
)

type ctxKey struct{}

type authenticated struct {
	id     *Identity
	method Method
}

// NewContext returns ctx carrying id (authenticated by m).
func NewContext(ctx context.Context, id *Identity, m Method) context.Context {
	return context.WithValue(ctx, ctxKey{}, authenticated{id, m})
}

// FromContext returns the identity of the call, if it was authenticated.
func FromContext(ctx context.Context) (*Identity, Method, bool) {
	v, ok := ctx.Value(ctxKey{}).(authenticated)
	if !ok || v.id == nil {
		return nil, "", false
	}
	return v.id, v.method, true
}

// Authenticate finds ctx's identity. It returns nil and no error for a call
// allowed without identity; the error is a gRPC status (Unauthenticated).
func (a *Authenticator) Authenticate(ctx context.Context) (*Identity, Method, error) {
	set := a.set.Load()
	if set == nil {
		return nil, "", nil
	}
	cert := verifiedClientCert(ctx)
	var byCert *Identity
	var certErr error
	if cert != nil {
		byCert, certErr = set.ByCert(cert)
	}
	token, present, err := bearerToken(ctx)
	if err != nil {
		return nil, "", err
	}
	var byToken *Identity
	if present {
		id, ok := set.ByToken(token)
		if !ok {
			return nil, "", status.Errorf(codes.Unauthenticated, "unknown bearer token: no token_sha256 in the identities file matches it")
		}
		byToken = id
	}
	switch {
	case byCert != nil && byToken != nil && byCert.HostID != byToken.HostID:
		return nil, "", status.Errorf(codes.Unauthenticated, "client certificate is %s but bearer token is %s: send one credential, or both for the same host", byCert, byToken)
	case byCert != nil:
		return byCert, MethodCertificate, nil
	case byToken != nil:
		return byToken, MethodToken, nil
	case a.allowUnauthenticated:
		return nil, "", nil
	case certErr != nil:
		return nil, "", status.Error(codes.Unauthenticated, certErr.Error())
	default:
		return nil, "", status.Error(codes.Unauthenticated, "no client certificate or bearer token: this collector requires agents to authenticate (identities file "+set.File+")")
	}
}

// verifiedClientCert is the peer's leaf certificate if the TLS handshake
// verified it against the client CA; nil otherwise.
func verifiedClientCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.PeerCertificates) == 0 {
		return nil
	}
	return info.State.PeerCertificates[0]
}

// bearerToken reads `authorization: Bearer <token>` from the metadata.
func bearerToken(ctx context.Context) (token string, present bool, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", false, status.Errorf(codes.Unauthenticated, "%d authorization metadata values: send one, `Bearer <token>`", len(vals))
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false, status.Errorf(codes.Unauthenticated, "authorization metadata is not `Bearer <token>`")
	}
	return tok, true, nil
}

// StreamInterceptor authenticates each stream before its handler runs and
// puts the identity in the stream's context (FromContext). A refused stream
// ends with Unauthenticated and the reason.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &stream{ServerStream: ss, ctx: ctx})
	}
}

// UnaryInterceptor is StreamInterceptor for unary calls.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func (a *Authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	id, m, err := a.Authenticate(ctx)
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	if err != nil {
		a.log.Warn("agent refused: not authenticated", "peer", addr, "method", method, "err", status.Convert(err).Message())
		return ctx, err
	}
	if id == nil {
		if a.set.Load() != nil {
			a.log.Debug("agent accepted without identity (--allow-unauthenticated)", "peer", addr, "method", method)
		}
		return ctx, nil
	}
	a.log.Debug("agent authenticated", "peer", addr, "host_id", id.HostID, "by", string(m), "identity", fmt.Sprintf("identities[%d]", id.Index))
	return NewContext(ctx, id, m), nil
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }
