//! A loopback RTSP server for the reconnect tests: serves a live test pattern as raw RTP
//! video (no encoder needed) at rtsp://127.0.0.1:PORT/test until killed.
//!
//! Usage: rtsp_test_server PORT

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::args()
        .nth(1)
        .ok_or("usage: rtsp_test_server PORT")?;
    gst::init()?;
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&port);
    let mounts = server.mount_points().ok_or("server has no mount points")?;
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,format=RGB,width=160,height=120,framerate=15/1 ! rtpvrawpay name=pay0 pt=96 )",
    );
    factory.set_shared(true);
    mounts.add_factory("/test", factory);
    let _id = server.attach(None)?;
    println!("listening on rtsp://127.0.0.1:{port}/test");
    glib::MainLoop::new(None, false).run();
    Ok(())
}
