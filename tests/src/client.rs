use std::time::Duration;

/// An HTTP answer as the tests look at it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; fails the test with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// Asserts a tfgate/TF Serving error answer: this status, JSON content type, an `error` text.
    pub fn assert_json_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "unexpected status, body: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"), "body: {}", self.body);
        let error = self.json()["error"].as_str().unwrap_or_else(|| panic!("no error text: {}", self.body)).to_owned();
        assert!(!error.is_empty());
        error
    }
}

/// A blocking client for one base URL; non-2xx answers are returned, not raised.
pub struct HttpClient {
    base: String,
    agent: ureq::Agent,
}

impl HttpClient {
    pub fn new(base: String) -> HttpClient {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        HttpClient { base, agent }
    }

    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], None)
    }

    pub fn post(&self, path: &str, body: &str) -> Response {
        self.send("POST", path, &[], Some(body))
    }

    /// Sends any method with extra headers; the path is sent exactly as given.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{}", self.base, path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.unwrap_or("").to_owned()).expect("request");
        let response = self.agent.run(request).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response.into_body().read_to_string().unwrap_or_default();
        Response { status, headers, body }
    }
}
