//! Bad input gets a typed error and writes nothing.

use std::sync::Arc;

use session_core::{AppData, DeviceInfo, Error, InputError, LoginRequest, SessionStore};

use crate::harness::Harness;

/// Oversized app data or device fields are refused before anything is written.
pub async fn oversized_input_is_rejected(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config().with_max_app_data_bytes(1024));
    let user = h.user("yuri");
    let big = AppData::from_value(&"x".repeat(2000)).unwrap();
    let result = manager
        .login(&user, LoginRequest::new().with_data(big))
        .await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput(InputError::TooLong {
                field: "app data",
                max: 1024,
                ..
            }))
        ),
        "{result:?}"
    );
    // An over-long user agent is cut instead (see `refresh_records_device`); a device name is not.
    let long_name = DeviceInfo::new().with_device_name("d".repeat(DeviceInfo::MAX_DEVICE_NAME + 1));
    let result = manager
        .login(&user, LoginRequest::new().with_device(long_name))
        .await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput(InputError::TooLong {
                field: "device name",
                ..
            }))
        ),
        "{result:?}"
    );
    let nul_name = DeviceInfo::new().with_device_name("pho\0ne");
    let result = manager
        .login(&user, LoginRequest::new().with_device(nul_name))
        .await;
    assert!(matches!(
        result,
        Err(Error::InvalidInput(InputError::ContainsNul { .. }))
    ));
    assert!(
        manager.list(&user).await.unwrap().is_empty(),
        "nothing was written"
    );

    let exact = AppData::from_json(format!("\"{}\"", "y".repeat(1022))).unwrap();
    assert_eq!(exact.len(), 1024);
    manager
        .login(&user, LoginRequest::new().with_data(exact))
        .await
        .unwrap();
}

/// User ids at the length bound work; longer, empty or NUL-bearing ones cannot be built.
pub async fn user_id_bounds(store: Arc<dyn SessionStore>) {
    let h = Harness::new(store);
    let manager = h.manager(Harness::config());
    // The harness's namespace takes 17 bytes: 119 two-byte characters fill the rest.
    let longest = h.user(&"ü".repeat(119));
    assert_eq!(longest.as_str().len(), 255);
    let login = manager.login(&longest, LoginRequest::new()).await.unwrap();
    let stored = h.store.find(&login.session.id).await.unwrap().unwrap();
    assert_eq!(stored.user_id, longest);
    assert_eq!(manager.list(&longest).await.unwrap().len(), 1);
    assert_eq!(manager.logout_all(&longest).await.unwrap(), 1);
    assert!(session_core::UserId::new("ü".repeat(128)).is_err());
    assert!(session_core::UserId::new("").is_err());
    assert!(session_core::UserId::new("a\0").is_err());
    // Characters that mean something to SQL, Redis keys or hash tags are plain data.
    for odd in [
        "{tag}",
        "a'; DROP TABLE x; --",
        "sp ace:colon*star?[x]",
        "%_\\",
    ] {
        let user = h.user(odd);
        let login = manager.login(&user, LoginRequest::new()).await.unwrap();
        assert_eq!(manager.list(&user).await.unwrap()[0].id, login.session.id);
        assert_eq!(manager.logout_all(&user).await.unwrap(), 1);
    }
}
