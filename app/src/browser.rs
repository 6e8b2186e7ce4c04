//! Browser-only helpers (feature `hydrate`): the API token kept in localStorage, the files the
//! user picked, HTTP requests with upload progress, and sleeping. The page logic lives in
//! `pages::upload`; this module only talks to the browser.

use std::cell::RefCell;

use wasm_bindgen::{closure::Closure, JsCast, JsValue};

const TOKEN_KEY: &str = "caplens-api-token";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The API token this browser uploads with, if one was stored.
pub fn stored_token() -> Option<String> {
    storage()?.get_item(TOKEN_KEY).ok().flatten()
}

pub fn store_token(secret: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(TOKEN_KEY, secret);
    }
}

pub fn forget_token() {
    if let Some(s) = storage() {
        let _ = s.remove_item(TOKEN_KEY);
    }
}

/// `https://host:port` of the page.
pub fn origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

thread_local! {
    /// The files picked for upload (the browser is single-threaded; signals hold only their
    /// names and sizes).
    static FILES: RefCell<Vec<web_sys::File>> = const { RefCell::new(Vec::new()) };
}

pub fn set_files(files: Vec<web_sys::File>) {
    FILES.with(|f| *f.borrow_mut() = files);
}

pub fn files() -> Vec<web_sys::File> {
    FILES.with(|f| f.borrow().clone())
}

/// The files of a file list (input or drop).
pub fn file_list(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else { return Vec::new() };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// A request's outcome: status and body text.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends a request with XMLHttpRequest (which, unlike fetch, reports upload progress).
pub async fn request(
    method: &str,
    url: &str,
    body: Option<&JsValue>,
    token: Option<&str>,
    on_upload_progress: Option<Box<dyn Fn(f64, f64)>>,
) -> Result<Answer, String> {
    let xhr = web_sys::XmlHttpRequest::new().map_err(|_| "this browser cannot send requests")?;
    xhr.open(method, url)
        .map_err(|_| format!("cannot open {url}"))?;
    if let Some(t) = token {
        let _ = xhr.set_request_header("Authorization", &format!("Bearer {t}"));
    }
    // Kept alive until the request ends.
    let progress_closure = on_upload_progress.map(|f| {
        Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
            if e.length_computable() {
                f(e.loaded(), e.total());
            }
        })
    });
    if let (Some(c), Ok(upload)) = (&progress_closure, xhr.upload()) {
        upload.set_onprogress(Some(c.as_ref().unchecked_ref()));
    }
    let done = js_sys::Promise::new(&mut |resolve, reject| {
        xhr.set_onload(Some(&resolve));
        xhr.set_onerror(Some(&reject));
        xhr.set_onabort(Some(&reject));
    });
    let sent = match body {
        Some(b) if b.is_instance_of::<web_sys::FormData>() => {
            xhr.send_with_opt_form_data(b.dyn_ref::<web_sys::FormData>())
        }
        Some(b) => xhr.send_with_opt_blob(b.dyn_ref::<web_sys::Blob>()),
        None => xhr.send(),
    };
    sent.map_err(|_| format!("cannot send the request to {url}"))?;
    wasm_bindgen_futures::JsFuture::from(done)
        .await
        .map_err(|_| "the connection to the server was lost".to_string())?;
    drop(progress_closure);
    Ok(Answer {
        status: xhr.status().unwrap_or(0),
        body: xhr.response_text().ok().flatten().unwrap_or_default(),
    })
}

/// The message of an API error body (`{"error":{"message"}}`), or the body.
pub fn api_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Detail {
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: Detail,
    }
    serde_json::from_str::<ErrorBody>(body)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| body.chars().take(300).collect())
}

/// An open server-sent-events subscription; closed when dropped.
pub struct EventStream {
    source: web_sys::EventSource,
    _on_event: Closure<dyn FnMut(web_sys::MessageEvent)>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// Subscribes to `url` and calls `on_event(data)` for every event named in `events`.
pub fn follow_events(
    url: &str,
    events: &[&str],
    on_event: impl Fn(String) + 'static,
) -> Option<EventStream> {
    let source = web_sys::EventSource::new(url).ok()?;
    let closure =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
            if let Some(data) = e.data().as_string() {
                on_event(data);
            }
        });
    for name in events {
        let _ = source.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
    }
    Some(EventStream {
        source,
        _on_event: closure,
    })
}

/// The bytes of a file the user picked.
pub async fn file_bytes(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buffer = wasm_bindgen_futures::JsFuture::from(file.array_buffer())
        .await
        .map_err(|_| format!("cannot read {}", file.name()))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}
