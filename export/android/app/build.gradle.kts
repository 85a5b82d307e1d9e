plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

// The ncnn JNI bridge is built only when gradle.properties names an ncnn Android release (ncnn.dir).
val ncnnDir: String? = providers.gradleProperty("ncnn.dir").orNull

android {
    namespace = "org.edgesr.example"
    compileSdk = 34

    defaultConfig {
        applicationId = "org.edgesr.example"
        minSdk = 24
        targetSdk = 34
        versionCode = 1
        versionName = "0.1"
        ndk { abiFilters += listOf("arm64-v8a") }
        if (ncnnDir != null) {
            externalNativeBuild { cmake { arguments += listOf("-DNCNN_ROOT=$ncnnDir", "-DANDROID_STL=c++_shared") } }
        }
    }
    if (ncnnDir != null) {
        externalNativeBuild {
            cmake {
                path = file("src/main/cpp/CMakeLists.txt")
                version = "3.22.1"
            }
        }
    }
    buildTypes {
        release { isMinifyEnabled = false }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    // models are copied out of the APK to files/ at start: keep them uncompressed
    androidResources { noCompress += listOf("ort", "onnx", "param", "bin") }
}

dependencies {
    // ONNX Runtime for .ort (and .onnx) artifacts: the full package has every operator; a reduced build
    // from the artifact's .required_operators.config is smaller (see README.md).
    implementation("com.microsoft.onnxruntime:onnxruntime-android:1.20.0")
}
