pub fn _probe() {}
