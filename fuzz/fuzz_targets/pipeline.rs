//! Pipelined request streams, split into requests as holdfast's server reads them
//! (`holdfast_http1::split`): the stream whole and cut anywhere must give the same
//! requests and the same end.
#![no_main]
use holdfast_http1::split::split;
use libfuzzer_sys::fuzz_target;

/// What a split says, comparably.
fn summary(pieces: &[&[u8]]) -> (Vec<(String, String, Vec<(String, Vec<u8>)>, Vec<u8>)>, holdfast_http1::split::End) {
    let (reqs, end) = split(pieces, 16 * 1024, 100);
    let reqs = reqs
        .into_iter()
        .map(|r| {
            let fields = r.head.headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect();
            (r.head.method.to_string(), r.head.uri.to_string(), fields, r.body.to_vec())
        })
        .collect();
    (reqs, end)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else { return };
    let whole = summary(&[stream]);
    let pieces: Vec<&[u8]> = stream.chunks(usize::from(step).max(1)).collect();
    assert_eq!(whole, summary(&pieces));
});
