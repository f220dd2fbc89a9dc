//! End-to-end checks of the tfs-sim binary over real gRPC, with the generated tonic clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use tfgate_proto::tensorflow::serving::{
    model_service_client::ModelServiceClient, model_spec::VersionChoice, model_version_status::State,
    prediction_service_client::PredictionServiceClient, GetModelMetadataRequest, GetModelStatusRequest, ModelSpec,
    PredictRequest, SignatureDefMap,
};
use tfgate_proto::tensorflow::{error::Code, tensor_shape_proto::Dim, DataType, TensorProto, TensorShapeProto};
use tonic::transport::Channel;

/// The binary under test: `TFS_SIM_BIN` (e.g. a release build), else the one cargo just built.
fn bin() -> String {
    std::env::var("TFS_SIM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tfs-sim").to_string())
}

/// A running tfs-sim, killed on drop.
struct Sim {
    child: Child,
    addr: SocketAddr,
}

impl Sim {
    fn start(extra: &[&str]) -> Sim {
        let mut child = Command::new(bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn tfs-sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("tfs-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Sim { child, addr }
    }

    async fn predict_client(&self) -> PredictionServiceClient<Channel> {
        PredictionServiceClient::connect(format!("http://{}", self.addr)).await.unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spec(name: &str, choice: Option<VersionChoice>) -> Option<ModelSpec> {
    Some(ModelSpec { name: name.into(), version_choice: choice, signature_name: String::new() })
}

fn x_request(choice: Option<VersionChoice>, x: &[f32]) -> PredictRequest {
    let x = TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: Some(TensorShapeProto {
            dim: vec![Dim { size: x.len() as i64, name: String::new() }],
            unknown_rank: false,
        }),
        float_val: x.to_vec(),
        ..Default::default()
    };
    PredictRequest {
        model_spec: spec("half_plus_two", choice),
        inputs: [("x".to_string(), x)].into_iter().collect(),
        output_filter: vec![],
    }
}

#[tokio::test]
async fn predict_versions_and_labels() {
    let sim = Sim::start(&[]);
    let mut client = sim.predict_client().await;
    let cases = [
        (Some(VersionChoice::Version(1)), vec![2.5, 3.0, 4.5], 1),
        (Some(VersionChoice::Version(2)), vec![3.5, 4.0, 5.5], 2),
        (None, vec![3.5, 4.0, 5.5], 2),
        (Some(VersionChoice::VersionLabel("stable".into())), vec![2.5, 3.0, 4.5], 1),
        (Some(VersionChoice::VersionLabel("canary".into())), vec![3.5, 4.0, 5.5], 2),
    ];
    for (choice, want, version) in cases {
        let resp = client.predict(x_request(choice.clone(), &[1.0, 2.0, 5.0])).await.unwrap().into_inner();
        let y = &resp.outputs["y"];
        assert_eq!(y.float_val, want, "{choice:?}");
        assert_eq!(y.dtype, DataType::DtFloat as i32);
        assert_eq!(y.tensor_shape.as_ref().unwrap().dim[0].size, 3);
        let got = resp.model_spec.unwrap();
        assert_eq!(got.name, "half_plus_two");
        assert_eq!(got.version_choice, Some(VersionChoice::Version(version)));
        assert_eq!(got.signature_name, "serving_default");
    }
}

#[tokio::test]
async fn predict_errors() {
    let sim = Sim::start(&[]);
    let mut client = sim.predict_client().await;
    let mut req = x_request(None, &[1.0]);
    req.model_spec = spec("nope", None);
    let e = client.predict(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_eq!(e.message(), "Servable not found for request: Latest(nope)");

    let e = client.predict(x_request(Some(VersionChoice::Version(7)), &[1.0])).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_eq!(e.message(), "Servable not found for request: Specific(half_plus_two, 7)");

    let mut req = x_request(None, &[1.0]);
    req.inputs.get_mut("x").unwrap().dtype = DataType::DtInt32 as i32;
    assert_eq!(client.predict(req).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    // The server is still fine afterwards.
    assert!(client.predict(x_request(None, &[1.0])).await.is_ok());
}

#[tokio::test]
async fn echo_types_over_the_wire() {
    let sim = Sim::start(&[]);
    let mut client = sim.predict_client().await;
    let shape = Some(TensorShapeProto { dim: vec![Dim { size: 2, name: String::new() }], unknown_rank: false });
    let f64s = TensorProto {
        dtype: DataType::DtDouble as i32,
        tensor_shape: shape.clone(),
        double_val: vec![1e300, -0.5],
        ..Default::default()
    };
    let s = TensorProto {
        dtype: DataType::DtString as i32,
        tensor_shape: shape,
        string_val: vec![b"hi".to_vec(), vec![0, 0xff]],
        ..Default::default()
    };
    let req = PredictRequest {
        model_spec: spec("echo_types", None),
        inputs: [("f64".to_string(), f64s.clone()), ("s".to_string(), s.clone())].into_iter().collect(),
        output_filter: vec![],
    };
    let resp = client.predict(req).await.unwrap().into_inner();
    assert_eq!(resp.outputs.len(), 3);
    assert_eq!(resp.outputs["f64_out"], f64s);
    assert_eq!(resp.outputs["s_out"], s);
    assert_eq!(resp.outputs["s_bytes"], s);
}

#[tokio::test]
async fn metadata_and_status() {
    let sim = Sim::start(&[]);
    let mut client = sim.predict_client().await;
    let resp = client
        .get_model_metadata(GetModelMetadataRequest {
            model_spec: spec("half_plus_two", None),
            metadata_field: vec!["signature_def".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.model_spec.unwrap().version_choice, Some(VersionChoice::Version(2)));
    let any = &resp.metadata["signature_def"];
    assert_eq!(any.type_url, tfgate_proto::SIGNATURE_DEF_MAP_TYPE_URL);
    let map = SignatureDefMap::decode(any.value.as_slice()).unwrap();
    let def = &map.signature_def["serving_default"];
    assert_eq!(def.method_name, "tensorflow/serving/predict");
    assert_eq!(def.inputs["x"].dtype, DataType::DtFloat as i32);
    assert_eq!(def.outputs["y"].tensor_shape.as_ref().unwrap().dim[0].size, -1);

    let e = client
        .get_model_metadata(GetModelMetadataRequest { model_spec: spec("half_plus_two", None), metadata_field: vec![] })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    let mut models = ModelServiceClient::connect(format!("http://{}", sim.addr)).await.unwrap();
    let status = |choice| GetModelStatusRequest { model_spec: spec("half_plus_two", choice) };
    let all = models.get_model_status(status(None)).await.unwrap().into_inner();
    assert_eq!(all.model_version_status.iter().map(|s| s.version).collect::<Vec<_>>(), [1, 2]);
    for s in &all.model_version_status {
        assert_eq!(s.state, State::Available as i32);
        let st = s.status.as_ref().unwrap();
        assert_eq!((st.error_code, st.error_message.as_str()), (Code::Ok as i32, ""));
    }
    let one = models.get_model_status(status(Some(VersionChoice::Version(1)))).await.unwrap().into_inner();
    assert_eq!(one.model_version_status.len(), 1);
    let e = models.get_model_status(status(Some(VersionChoice::Version(5)))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = models.get_model_status(GetModelStatusRequest { model_spec: spec("nope", None) }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

fn http(addr: SocketAddr, method: &str, path: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap()
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test]
async fn cost_model_serializes_calls_and_stats_count_them() {
    let stats_addr = free_port();
    let sim = Sim::start(&["--cost-us", "20000,0", "--executors", "1", "--stats-listen", &stats_addr.to_string()]);
    let mut a = sim.predict_client().await;
    let mut b = a.clone();
    // Warm the connection so the timing below measures only the executor.
    a.predict(x_request(None, &[0.0])).await.unwrap();
    http(stats_addr, "POST", "/reset");

    let start = Instant::now();
    let (ra, rb) =
        tokio::join!(a.predict(x_request(None, &[1.0, 2.0, 5.0])), b.predict(x_request(None, &[1.0, 2.0, 5.0])));
    let took = start.elapsed();
    assert_eq!(ra.unwrap().into_inner().outputs["y"].float_val, [3.5, 4.0, 5.5]);
    assert!(rb.is_ok());
    assert!(took >= Duration::from_millis(40), "two 20 ms calls on one executor took {took:?}");

    let stats = http(stats_addr, "GET", "/stats");
    assert_eq!(stats["predict_calls"], 2);
    assert_eq!(stats["predict_items"], 6);
    assert_eq!(stats["max_batch"], 3);
    assert_eq!(stats["batch_sizes"], serde_json::json!({"3": 2}));
    let reset = http(stats_addr, "POST", "/reset");
    assert_eq!(reset["predict_calls"], 0);
}

#[test]
fn cli_help_and_bad_arguments() {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--cost-us"));
    for args in [&[][..], &["--listen", "nope"], &["--listen", "127.0.0.1:0", "--cost-us", "x"]] {
        let out = Command::new(bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: ") && stderr.contains("--help"), "{args:?}: {stderr}");
    }
}
