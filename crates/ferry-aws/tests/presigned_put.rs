//! #15 item 2: a presigned PUT (a CloudFormation response, a WaitCondition signal) follows no
//! redirect. An endpoint answering 3xx with a `Location` of its choosing gets an error back,
//! never a second PUT (with the signal's body) to wherever it points, and the URL is not in the
//! error.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ferry_aws::http::{presigned_put_client, put_presigned};

/// A one-thread HTTP server answering every request with `status` and `extra` headers; counts
/// the connections it accepted.
fn serve(status: &str, extra: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let status = status.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn a_redirect_is_an_answer_not_a_hop() {
    let (elsewhere, elsewhere_seen) = serve("200 OK", String::new());
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let (signal, signal_seen) = serve(status, format!("Location: {elsewhere}/stolen\r\n"));
        let url = format!("{signal}/wait-handle?X-Amz-Signature=secret");
        let err = put_presigned(
            &presigned_put_client(),
            &url,
            b"{\"Status\":\"SUCCESS\"}".to_vec(),
        )
        .await
        .map(|_| ())
        .unwrap_err();
        assert_eq!(err.code, format!("HTTP {}", &status[..3]), "{err:?}");
        assert!(!err.message.contains("secret"), "{err:?}");
        assert_eq!(signal_seen.load(Ordering::SeqCst), 1, "{status}");
    }
    assert_eq!(
        elsewhere_seen.load(Ordering::SeqCst),
        0,
        "a redirect's Location was followed"
    );
}
