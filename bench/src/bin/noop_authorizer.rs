//! The baseline: a gRPC AuthService that allows everything without looking, served like keygate
//! (tonic, same request and response types), so that keygate's cost can be stated as a ratio.
#![forbid(unsafe_code)]

use keygate::proto::keygate_v1 as pb;
use pb::auth_service_server::{AuthService, AuthServiceServer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

struct Noop;

#[tonic::async_trait]
impl AuthService for Noop {
    async fn authenticate(
        &self,
        _request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        Ok(Response::new(pb::AuthenticateResponse::default()))
    }

    async fn authorize(
        &self,
        _request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let decision = pb::Decision {
            allowed: true,
            reason: pb::DecisionReason::Allowed.into(),
            http_status: 200,
            ..Default::default()
        };
        Ok(Response::new(pb::AuthorizeResponse { decision: Some(decision), ..Default::default() }))
    }

    async fn issue_token(
        &self,
        _request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        Err(Status::unimplemented("the no-op authorizer issues no tokens"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(AuthServiceServer::new(Noop))
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await?;
    Ok(())
}
