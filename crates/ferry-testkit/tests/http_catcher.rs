//! ResponseCatcher against a real HTTP client (hyper) and hand-written requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use ferry_testkit::ResponseCatcher;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn records_a_cfn_style_put_with_empty_content_type() {
    let catcher = ResponseCatcher::start();
    let body = r#"{"Status":"SUCCESS","PhysicalResourceId":"ferry","StackId":"s","RequestId":"r","LogicalResourceId":"L","Data":{}}"#;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = hyper::Request::put(catcher.url("/cfn-response?X-Amz-Signature=abc&x=1"))
        .header("content-type", "")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .is_empty());

    let got = catcher.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path_and_query, "/cfn-response?X-Amz-Signature=abc&x=1");
    assert_eq!(r.path(), "/cfn-response");
    assert_eq!(r.query_param("X-Amz-Signature"), Some("abc"));
    assert_eq!(r.header("Content-Type"), Some(""));
    assert_eq!(
        r.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(r.body_text(), body);

    // Same pooled client, same keep-alive connection: a second request and a fault status.
    catcher.set_status(403);
    let again = hyper::Request::put(catcher.url("cfn-response"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(client.request(again).await.unwrap().status(), 403);
    assert_eq!(catcher.requests().len(), 2);
    assert_eq!(catcher.requests()[1].body, b"{}");
}

#[tokio::test]
async fn records_a_chunked_body() {
    let catcher = ResponseCatcher::start();
    let chunks = ["{\"Status\":", "\"SUCCESS\",", "\"Reason\":\"done\"}"];
    let stream = futures_util::stream::iter(
        chunks.map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c)))),
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<StreamBody<_>>();
    let request = hyper::Request::post(catcher.url("/wait-handle?sig=x"))
        .header("content-type", "application/json")
        .body(StreamBody::new(stream))
        .unwrap();
    assert_eq!(client.request(request).await.unwrap().status(), 200);

    let r = &catcher.wait_for(1, WAIT)[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.body_text(), chunks.concat());
}

#[test]
fn expect_continue_chunk_extensions_trailers_and_pipelining() {
    let catcher = ResponseCatcher::start();
    let mut conn = TcpStream::connect(catcher.addr()).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();

    // Expect: 100-continue: the interim response must come before the body is sent.
    conn.write_all(
        b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut buf = vec![0; interim.len()];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(buf, interim);
    conn.write_all(b"hello").unwrap();
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let mut buf = vec![0; ok.len()];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(buf, ok);

    // Two requests written at once on the same connection: chunked with an extension and a
    // trailer, then a bodiless one that closes.
    conn.write_all(
        b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          3;ext=1\r\nabc\r\n0\r\nX-Check: 1\r\n\r\n\
          GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut rest = String::new();
    conn.read_to_string(&mut rest).unwrap();
    assert_eq!(rest.matches("HTTP/1.1 200 OK").count(), 2, "{rest}");
    assert!(rest.ends_with("Connection: close\r\n\r\n"), "{rest}");

    let got = catcher.wait_for(3, WAIT);
    let summary: Vec<_> = got
        .iter()
        .map(|r| (r.method.as_str(), r.path(), r.body_text()))
        .collect();
    assert_eq!(
        summary,
        [
            ("PUT", "/a", "hello".to_string()),
            ("POST", "/b", "abc".to_string()),
            ("GET", "/c", String::new()),
        ]
    );
    assert_eq!(got[1].trailers, [("x-check".to_string(), "1".to_string())]);
}

#[test]
fn wait_for_times_out_with_what_it_has_and_drop_stops() {
    let catcher = ResponseCatcher::start();
    let addr = catcher.addr();
    let started = std::time::Instant::now();
    assert!(catcher.wait_for(1, Duration::from_millis(200)).is_empty());
    assert!(started.elapsed() >= Duration::from_millis(200));

    // An idle keep-alive connection must not keep the catcher alive.
    let _idle = TcpStream::connect(addr).unwrap();
    drop(catcher);
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after drop"
    );
}
