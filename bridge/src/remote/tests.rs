use super::*;
use crate::raw::KeepAnswer;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rmcp::model::{ClientRequest, CustomRequest, GetExtensions, RequestId};
use serde_json::json;

/// A server answering every POST with `status`, `content_type` and `body`.
async fn server(status: u16, content_type: &'static str, body: &'static str) -> Arc<str> {
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move || async move {
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", content_type), ("mcp-session-id", "s1")],
                body,
            )
                .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/mcp").into()
}

fn request(id: i64) -> ClientJsonRpcMessage {
    let mut request = ClientRequest::CustomRequest(CustomRequest::new("tools/list", None));
    request.extensions_mut().insert(KeepAnswer);
    ClientJsonRpcMessage::request(request, RequestId::Number(id))
}

async fn post(
    client: &WholeAnswers,
    url: Arc<str>,
    session: Option<&str>,
) -> Result<StreamableHttpPostResponse, Error> {
    client
        .post_message(
            url,
            request(5),
            session.map(Into::into),
            None,
            HashMap::new(),
        )
        .await
}

#[tokio::test]
async fn a_json_answer_is_kept_whole_and_parsed_for_the_sdk() {
    let answers = Arc::new(Answers::default());
    let client = WholeAnswers::new(answers.clone());
    let url = server(
        200,
        "application/json",
        r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[],"future":{"a":1}}}"#,
    )
    .await;
    let answer = post(&client, url, None).await.unwrap();
    assert!(
        matches!(answer, StreamableHttpPostResponse::Json(_, Some(ref s)) if s == "s1"),
        "{answer:?}"
    );
    assert_eq!(
        answers.take(&RequestId::Number(5)),
        Some(json!({"tools": [], "future": {"a": 1}}))
    );
}

#[tokio::test]
async fn an_event_stream_answer_is_kept_whole_as_the_sdk_reads_it() {
    let answers = Arc::new(Answers::default());
    let client = WholeAnswers::new(answers.clone());
    let url = server(
        200,
        "text/event-stream",
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"future\":2}}\n\n",
    )
    .await;
    let StreamableHttpPostResponse::Sse(mut events, _) = post(&client, url, None).await.unwrap()
    else {
        panic!("an event stream")
    };
    assert!(events.next().await.is_some_and(|e| e.is_ok()));
    assert_eq!(
        answers.take(&RequestId::Number(5)),
        Some(json!({"future": 2}))
    );
}

#[tokio::test]
async fn statuses_mean_what_the_sdk_expects() {
    let client = WholeAnswers::new(Arc::new(Answers::default()));
    let accepted = server(202, "text/plain", "").await;
    assert!(matches!(
        post(&client, accepted, None).await,
        Ok(StreamableHttpPostResponse::Accepted)
    ));
    let gone = server(404, "text/plain", "no").await;
    assert!(matches!(
        post(&client, gone, Some("s1")).await,
        Err(StreamableHttpError::SessionExpired)
    ));
    let refused = server(
        400,
        "application/json",
        r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"no"}}"#,
    )
    .await;
    assert!(matches!(
        post(&client, refused, None).await,
        Ok(StreamableHttpPostResponse::Json(_, _))
    ));
    let broken = server(502, "text/html", "<html>").await;
    assert!(post(&client, broken, None).await.is_err());
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let elsewhere = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "got it" }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, elsewhere).await });
    let location: &'static str = Box::leak(evil.into_boxed_str());
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move || async move {
            (StatusCode::TEMPORARY_REDIRECT, [("location", location)]).into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: Arc<str> = format!("http://{}/mcp", listener.local_addr().unwrap()).into();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = WholeAnswers::new(Arc::new(Answers::default()));
    let mut headers = HashMap::new();
    headers.insert(
        HeaderName::from_static("x-api-key"),
        HeaderValue::from_static("secret"),
    );
    let outcome = client
        .post_message(url, request(5), Some("s1".into()), None, headers)
        .await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the other origin got nothing"
    );
}
